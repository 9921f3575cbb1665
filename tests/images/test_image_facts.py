"""Supply-chain facts of the built images: labels, user, contents, no caches, size."""

from __future__ import annotations

import subprocess

import pytest
from pod_spec import TEST_LABEL

from generator.paths import REPO_ROOT
from generator.tools.images.build import code_revision, image_specs, source_url

SERVICE_DIRS = {"server": "services/inference", "trainer": "services/training"}
#: The README's figure for the server on the Debian base (the slim base is smaller).
SERVER_MAX_BYTES = 450 * 10**6
CACHES = ("/root/.cache", "/tmp/.cache", "/var/cache/apt", "/var/lib/apt/lists")


def _run(engine, image: str, *command: str) -> str:
    """Run a command in the image (no network, removed on exit) and return its stdout."""
    result = engine.run(
        "run", "--rm", "--network", "none", "--label", f"{TEST_LABEL}=facts", "--entrypoint", command[0], image,
        *command[1:],
    )  # fmt: skip
    return result.stdout


@pytest.mark.parametrize("name", sorted(SERVICE_DIRS))
def test_labels_and_user(name, engine, built_images):
    spec = image_specs()[name]
    config = engine.inspect_image(built_images[spec.repository])["Config"]
    labels = config.get("Labels") or {}
    assert labels.get("org.opencontainers.image.source") == source_url()
    assert labels.get("org.opencontainers.image.revision") == code_revision()
    created = subprocess.run(["git", "log", "-1", "--format=%cI"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert labels.get("org.opencontainers.image.created") == created.stdout.strip()
    user, _, group = config.get("User", "").partition(":")
    assert user.isdigit() and int(user) != 0 and group.isdigit(), (
        f"USER must be a non-root number, not {config['User']!r}"
    )


@pytest.mark.parametrize("name", sorted(SERVICE_DIRS))
def test_every_source_file_is_in_the_image(name, engine, built_images):
    tracked = subprocess.run(
        [
            "git",
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            SERVICE_DIRS[name],
            ":(glob)services/*.py",  # the modules both services share (artifacts, values)
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    wanted = {path for path in tracked if not path.rsplit("/", 1)[-1].startswith("Dockerfile")}
    listing = _run(engine, built_images[image_specs()[name].repository], "find", "/app/services", "-type", "f")
    present = {line.removeprefix("/app/") for line in listing.split() if "__pycache__" not in line}
    assert wanted - present == set(), f"missing from the {name} image: {sorted(wanted - present)}"


@pytest.mark.parametrize("name", sorted(SERVICE_DIRS))
def test_no_package_manager_caches(name, engine, built_images):
    script = "; ".join(f"[ -d {path} ] && find {path} -type f ! -name lock" for path in CACHES) + "; true"
    leftovers = _run(engine, built_images[image_specs()[name].repository], "sh", "-c", script).split()
    assert leftovers == [], f"package caches in the {name} image: {leftovers[:10]}"


def test_server_image_size(engine, built_images):
    size = int(engine.inspect_image(built_images[image_specs()["server"].repository])["Size"])
    assert size <= SERVER_MAX_BYTES, f"server image is {size / 1e6:.0f} MB, over {SERVER_MAX_BYTES / 1e6:.0f} MB"


def test_server_image_parses_requests_in_c_and_has_no_compiler(engine, built_images):
    """gunicorn_h1c is built in the Dockerfile's build stage; the serving stage has its venv, no compiler."""
    image = built_images[image_specs()["server"].repository]
    compilers = _run(engine, image, "sh", "-c", "for c in gcc cc c99 g++ as ld; do command -v $c; done; true").split()
    assert compilers == [], f"a compiler or linker in the serving image: {compilers}"
    # gunicorn's own choice, as each request makes it (gunicorn/http/message.py), under the default
    # http_parser = auto the server runs with.
    check = (
        "from gunicorn.config import Config; from gunicorn.http.message import _check_fast_parser; "
        "print(_check_fast_parser(Config()))"
    )
    assert _run(engine, image, "python", "-c", check).strip() == "True"
