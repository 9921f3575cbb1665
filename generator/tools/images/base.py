"""The base image of both Dockerfiles: the default (``ARG BASE_IMAGE``), else one made from Debian.

The default is the official Python slim image that users expect. Where it is neither in the
engine's storage nor pullable (no image registry, as on an air-gapped builder), ``mmdebstrap``
makes a minimal Debian root filesystem from Debian's own packages (python3 and its venv module,
CA certificates, passwd for the image's user; no documentation, manual pages or locales; apt's
lists and caches removed) and the engine imports it. Its tag is a digest of that recipe, so a
second run finds it and does no work.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from generator.paths import CACHE_DIR, REPO_ROOT
from generator.tools import ToolError
from generator.tools.images.engine import Engine

SUITE = "bookworm"  # the Debian release of the default python:*-slim-bookworm image
PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
DPKG_INCLUDES = ("/usr/share/doc/*/copyright",)  # licences stay
REPOSITORY = "localhost/ml-gitops/debian-python"
BUILD_DIR = CACHE_DIR / "images"
ARG_DEFAULT = re.compile(r"^ARG\s+BASE_IMAGE=(\S+)\s*$", re.M)


def default_base(dockerfile: Path) -> str:
    """The ``ARG BASE_IMAGE`` default a Dockerfile declares (one fact, in the Dockerfile)."""
    found = ARG_DEFAULT.search(dockerfile.read_text())
    if not found:
        raise ToolError(f"{dockerfile.relative_to(REPO_ROOT)}: no 'ARG BASE_IMAGE=<default>' line")
    return found[1]


def mmdebstrap_command(target: Path) -> list[str]:
    """The mmdebstrap call that writes the base root filesystem as a tarball."""
    command = ["mmdebstrap", "--variant=minbase", "--format=tar", f"--include={','.join(PACKAGES)}"]
    command += [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES]
    command += [f"--dpkgopt=path-include={pattern}" for pattern in DPKG_INCLUDES]
    return [*command, SUITE, str(target)]


def debian_base_reference() -> str:
    """The tag of the mmdebstrap base: the suite and a digest of the recipe."""
    recipe = " ".join(mmdebstrap_command(Path("rootfs.tar")))
    return f"{REPOSITORY}:{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def build_debian_base(engine: Engine) -> str:
    """Make the base from Debian's packages with mmdebstrap and import it; return its reference."""
    reference = debian_base_reference()
    if engine.image_exists(reference):
        return reference
    if not shutil.which("mmdebstrap"):
        raise ToolError("mmdebstrap is not installed (Debian: apt-get install mmdebstrap); or pass BASE_IMAGE=")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    print(f"base-image: building {reference} from Debian {SUITE} packages with mmdebstrap", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="base-", dir=BUILD_DIR) as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        env = {**os.environ, "SOURCE_DATE_EPOCH": _source_date_epoch()}
        result = subprocess.run(
            [*mmdebstrap_command(tarball), "--quiet"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ToolError(f"mmdebstrap failed (exit {result.returncode}):\n{result.stderr.strip()[-2000:]}")
        if engine.name == "buildah":
            container = engine.run("from", "scratch").stdout.strip()
            try:
                engine.run("add", container, str(tarball), "/")
                engine.run("config", "--cmd", "/bin/bash", container)
                engine.run("commit", "--rm", container, reference)
            except ToolError:
                engine.run("rm", container, check=False)
                raise
        else:
            engine.run("import", "--change", 'CMD ["/bin/bash"]', str(tarball), reference)
    return reference


def _source_date_epoch() -> str:
    """The commit time of HEAD, so file times in the base do not depend on when it was built."""
    result = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=REPO_ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "0"


def resolve_base(engine: Engine, dockerfile: Path, wanted: str | None = None) -> str:
    """The base to build on: ``wanted`` if given, else the default if present or pullable, else Debian's."""
    if wanted:
        if engine.image_exists(wanted) or engine.pull(wanted):
            return wanted
        raise ToolError(f"BASE_IMAGE={wanted}: not in the engine's storage and it cannot be pulled")
    default = default_base(dockerfile)
    if engine.image_exists(default):
        return default
    print(f"base-image: pulling {default}", file=sys.stderr)
    if engine.pull(default):
        return default
    print(f"base-image: {default} cannot be pulled; using a base made from Debian packages", file=sys.stderr)
    return build_debian_base(engine)
