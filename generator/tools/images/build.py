"""Build the server and trainer images, tagged with the code revision, and push them by digest.

Each image is ``<repository from platform.yaml>:<revision>``: the revision is the commit of HEAD,
with ``-dirty`` appended when the build context (``services/``) has uncommitted changes. The OCI
labels say where the image comes from (``argocd.repoURL`` of platform.yaml), which commit and
when (the commit time, so the same commit gives the same labels). Builds pass each Dockerfile's
own ignore file (podman and buildah do not look for ``Dockerfile.dockerignore`` by themselves),
the builder's pip index configuration as build secrets (see pip_config.py), and, for podman and
buildah, the host network for RUN steps (no bridge or firewall rules are made on the host).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from generator.config import load_config
from generator.paths import REPO_ROOT
from generator.tools import ToolError
from generator.tools.images.engine import Engine
from generator.tools.images.pip_config import builder_pip_config

BUILD_CONTEXT = "services"


@dataclass(frozen=True)
class ImageSpec:
    """One image the repository builds: its logical name, Dockerfile and repository."""

    name: str
    dockerfile: Path
    repository: str

    @property
    def ignorefile(self) -> Path:
        """The Dockerfile's own ignore file (BuildKit reads it by name; podman needs --ignorefile)."""
        return self.dockerfile.with_name(self.dockerfile.name + ".dockerignore")

    def reference(self, revision: str) -> str:
        """The local tag of this image at a revision."""
        return f"{self.repository}:{revision}"


@dataclass(frozen=True)
class BuiltImage:
    """The outcome of one build, for the report and the image test."""

    spec: ImageSpec
    reference: str
    size_bytes: int
    seconds: float


def image_specs(config: Path = REPO_ROOT / "platform.yaml") -> dict[str, ImageSpec]:
    """The server and trainer images, named as in platform.yaml's ``images:``."""
    platform = load_config(config)
    return {
        "server": ImageSpec("server", REPO_ROOT / "services/inference/Dockerfile", platform.server_image.repository),
        "trainer": ImageSpec("trainer", REPO_ROOT / "services/training/Dockerfile", platform.trainer_image.repository),
    }


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def code_revision() -> str:
    """The commit the images are built from, ``-dirty`` when services/ has uncommitted changes."""
    revision = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=normal", "--", BUILD_CONTEXT)
    return f"{revision}-dirty" if dirty else revision


def source_url(config: Path = REPO_ROOT / "platform.yaml") -> str:
    """Where the source lives: the repository Argo CD syncs from (platform.yaml ``argocd.repoURL``)."""
    url = load_config(config).argocd.repo_url
    return url[: -len(".git")] if url.endswith(".git") else url


def build_arguments(
    engine: Engine, spec: ImageSpec, reference: str, base: str, revision: str, secrets: dict[str, Path]
) -> list[str]:
    """The engine's build command line for one image."""
    args = ["build", "--file", str(spec.dockerfile), "--tag", reference]
    if engine.name != "docker":  # BuildKit finds <Dockerfile>.dockerignore and has its own network
        args += ["--ignorefile", str(spec.ignorefile), "--network", "host", "--layers"]
    facts = {"CODE_REVISION": revision, "SOURCE_URL": source_url(), "CREATED": _git("log", "-1", "--format=%cI")}
    for key, value in {"BASE_IMAGE": base, **facts}.items():
        args += ["--build-arg", f"{key}={value}"]
    # The same facts as labels and env of the final image, set by the engine at commit time:
    # buildah (1.28) reuses a cached LABEL or ENV layer after its ARG value changed, which left a new
    # build labelled with an old revision (make test-images caught it). BuildKit needs no help.
    labels = {"source": facts["SOURCE_URL"], "revision": revision, "created": facts["CREATED"]}
    for key, value in labels.items():
        args += ["--label", f"org.opencontainers.image.{key}={value}"]
    if engine.name != "docker":
        args += ["--env", f"CODE_REVISION={revision}"]
    for secret_id, path in secrets.items():
        args += ["--secret", f"id={secret_id},src={path}"]
    return [*args, str(REPO_ROOT)]


def build_images(engine: Engine, base: str, names: list[str] | None = None) -> list[BuiltImage]:
    """Build the named images (all by default) on ``base``; return what was built, with sizes."""
    specs = image_specs()
    revision = code_revision()
    pip = builder_pip_config()
    for option, value in sorted(pip.dropped.items()):
        print(f"images: pip option {option}={value} is not passed to the build (a path of this machine, or not needed)")
    built = []
    with tempfile.TemporaryDirectory(prefix="image-secrets-") as tmp:
        secrets = pip.write_secrets(Path(tmp))
        for name in names or list(specs):
            spec = specs[name]
            reference = spec.reference(revision)
            print(f"images: building {reference} ({spec.dockerfile.relative_to(REPO_ROOT)}, base {base})", flush=True)
            started = time.monotonic()
            engine.run(*build_arguments(engine, spec, reference, base, revision, secrets), capture=False)
            seconds = time.monotonic() - started
            size = int(engine.inspect_image(reference).get("Size", 0))
            built.append(BuiltImage(spec, reference, size, seconds))
    return built


def push_image(engine: Engine, reference: str) -> str:
    """Push a built image and return the digest the registry stored (``sha256:...``)."""
    if engine.name == "docker":
        engine.run("push", reference, capture=False)
        digests = engine.run("image", "inspect", "--format", "{{json .RepoDigests}}", reference).stdout
        repository = reference.rsplit(":", 1)[0]
        for entry in json.loads(digests):
            if entry.startswith(f"{repository}@"):
                return entry.split("@", 1)[1]
        raise ToolError(f"docker push {reference}: no digest recorded")
    with tempfile.TemporaryDirectory(prefix="digest-") as tmp:
        digest_file = Path(tmp) / "digest"
        engine.run("push", "--digestfile", str(digest_file), reference, capture=False)
        return digest_file.read_text().strip()


def report(built: list[BuiltImage]) -> None:
    """One line per image: reference, size and build time (docs/images.md keeps the sizes)."""
    for image in built:
        print(
            f"images: {image.spec.name:8} {image.reference}  {image.size_bytes / 1e6:.0f} MB  "
            f"built in {image.seconds:.0f} s",
            file=sys.stdout,
        )
