"""Find a container engine and run it, keeping its state out of everyone else's way.

Docker is used when its daemon answers (a client alone is not enough); otherwise podman, else
buildah (which builds but cannot run a container like a pod, so ``make test-images`` needs Docker
or podman). ``CONTAINER_ENGINE=docker|podman|buildah`` picks one by name.

podman and buildah get this repository's own configuration, written to the git-ignored
``.cache/containers/``: a graph root and run root there (so images, layers and containers of
this project never mix with the machine's), the ``runc`` runtime when it is installed (``crun``
refuses a hybrid cgroup v1/v2 host), ``cgroupfs`` unless systemd runs, a file events log, and
default ulimits lower than podman's (raising RLIMIT_NOFILE and RLIMIT_NPROC to podman's defaults
is refused on some hosts). ``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` carry it to every call.
Docker keeps its own storage; the project's images are told apart by their repository names.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from generator.files import write_atomic
from generator.paths import CACHE_DIR
from generator.tools import ToolError

STATE_DIR = CACHE_DIR / "containers"
ENGINES = ("docker", "podman", "buildah")
#: Container ulimits, each further capped at this process's hard limit. podman's defaults (nofile
#: 1048576, nproc 4194304) are refused here, and so is any nproc above about 64k even where the
#: hard limit is higher; these are what a process in a Pod gets on common nodes, and ample.
DEFAULT_ULIMITS = {"nofile": 1048576, "nproc": 32768}
_RLIMITS = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}


@dataclass(frozen=True)
class Engine:
    """One container engine binary and the environment every call to it gets."""

    name: str
    binary: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        """The argument vector of one engine call."""
        return [self.binary, *args]

    def environ(self) -> dict[str, str]:
        """The process environment for an engine call: ours plus the engine's configuration."""
        return {**os.environ, **self.env}

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None, capture: bool = True
    ) -> subprocess.CompletedProcess:
        """Run the engine; on failure with ``check``, raise ToolError carrying its stderr."""
        try:
            result = subprocess.run(
                self.command(*args),
                env=self.environ(),
                capture_output=capture,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"{self.name} {args[0]} did not finish within {timeout:.0f} s") from exc
        if check and result.returncode != 0:
            detail = (result.stderr or "").strip() if capture else "(see the output above)"
            raise ToolError(f"{self.name} {' '.join(args[:2])} failed (exit {result.returncode}):\n{detail}")
        return result

    def image_exists(self, reference: str) -> bool:
        """Tell whether the engine's storage holds an image of that reference."""
        if self.name == "podman":
            return self.run("image", "exists", reference, check=False).returncode == 0
        return self.run("inspect", "--type", "image", reference, check=False).returncode == 0

    def inspect_image(self, reference: str) -> dict:
        """The engine's inspection of one image, normalised to Docker's layout (``Config``, ``Size``)."""
        if self.name == "buildah":
            data = json.loads(self.run("inspect", "--type", "image", reference).stdout)
            listing = json.loads(self.run("images", "--json", reference).stdout or "[]")
            return {
                "Id": data.get("FromImageID", ""),
                "Config": _docker_config(data.get("OCIv1", {}).get("config", {})),
                "Size": int(listing[0].get("size", 0)) if listing else 0,
            }
        return json.loads(self.run("image", "inspect", reference).stdout)[0]

    def pull(self, reference: str, timeout: float = 600) -> bool:
        """Try to pull an image; True on success (a registry that cannot be reached is a plain no)."""
        try:
            return self.run("pull", reference, check=False, timeout=timeout).returncode == 0
        except ToolError:
            return False


def _docker_config(config: dict) -> dict:
    """OCI image config keys (lower case) in Docker's spelling, as ``docker image inspect`` gives them."""
    return {
        "User": config.get("User", ""),
        "Env": config.get("Env", []),
        "Cmd": config.get("Cmd"),
        "Entrypoint": config.get("Entrypoint"),
        "WorkingDir": config.get("WorkingDir", ""),
        "Labels": config.get("Labels") or {},
        "ExposedPorts": config.get("ExposedPorts") or {},
    }


def _docker_daemon_answers(binary: str) -> bool:
    try:
        return (
            subprocess.run(
                [binary, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                text=True,
                timeout=20,
                stdin=subprocess.DEVNULL,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def _ulimits() -> list[str]:
    """The containers' default ulimits, each capped at this process's hard limit."""
    limits = []
    for name, default in DEFAULT_ULIMITS.items():
        hard = resource.getrlimit(_RLIMITS[name])[1]
        value = default if hard == resource.RLIM_INFINITY else min(default, hard)
        limits.append(f"{name}={value}:{value}")
    return limits


def _write_atomically(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    write_atomic(path, text.encode())


def containers_configuration(state_dir: Path = STATE_DIR) -> dict[str, str]:
    """Write the project's containers.conf and storage.conf; return the environment naming them."""
    for sub in ("storage", "run", "tmp"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    runtime = "runc" if shutil.which("runc") else ""
    cgroups = "systemd" if Path("/run/systemd/system").is_dir() else "cgroupfs"
    ulimits = ", ".join(json.dumps(limit) for limit in _ulimits())
    containers_conf = "\n".join(
        [
            "# Written by generator/tools/images/engine.py: this repository's podman and buildah settings.",
            "[containers]",
            f"default_ulimits = [{ulimits}]",
            "[engine]",
            f'cgroup_manager = "{cgroups}"',
            'events_logger = "file"',
            f'tmp_dir = "{state_dir / "tmp"}"',
            *([f'runtime = "{runtime}"'] if runtime else []),
            "",
        ]
    )
    storage_conf = "\n".join(
        [
            "# Written by generator/tools/images/engine.py: this repository's own image storage.",
            "[storage]",
            'driver = "overlay"',
            f'graphroot = "{state_dir / "storage"}"',
            f'runroot = "{state_dir / "run"}"',
            "",
        ]
    )
    _write_atomically(state_dir / "containers.conf", containers_conf)
    _write_atomically(state_dir / "storage.conf", storage_conf)
    return {
        "CONTAINERS_CONF": str(state_dir / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(state_dir / "storage.conf"),
    }


def detect_engine(name: str | None = None, *, must_run: bool = False) -> Engine:
    """The engine to use: ``name`` (or ``$CONTAINER_ENGINE``), else Docker with a daemon, podman, buildah."""
    wanted = name or os.environ.get("CONTAINER_ENGINE") or None
    if wanted and wanted not in ENGINES:
        raise ToolError(f"CONTAINER_ENGINE={wanted!r}: use one of {', '.join(ENGINES)}")
    candidates = [wanted] if wanted else list(ENGINES)
    if must_run:
        candidates = [c for c in candidates if c != "buildah"]
    for candidate in candidates:
        binary = shutil.which(candidate)
        if not binary:
            continue
        if candidate == "docker":
            if _docker_daemon_answers(binary):
                return Engine("docker", binary)
            continue
        return Engine(candidate, binary, containers_configuration())
    need = "Docker or podman" if must_run else "Docker, podman or buildah"
    hint = "" if wanted else " (on Debian: apt-get install podman buildah runc slirp4netns mmdebstrap)"
    raise ToolError(f"no container engine: {need} is needed{hint}" if not wanted else f"{wanted} is not usable here")
