"""``python -m services.fetch_model``: put a pinned model image's files where the server reads them.

The server image runs this as an init container (the chart's ``model.artifact.delivery:
initContainer``, for clusters without image volumes): it pulls the version's OCI image by digest
into an emptyDir (:func:`services.registry_client.pull`: the manifest's and the layer's digests
are checked while streaming, only regular files and directories under ``model/`` are unpacked),
and the server then serves ``$MODEL_FETCH_DIR/model/``, checking ``MODEL_DIGEST`` as always.
An init container runs again when its pod restarts: a directory that already holds a complete
pull of the same digest (the marker ``$MODEL_FETCH_DIR/.digest``, written last) is left as it is,
and no registry is asked.

Settings (environment):

- ``MODEL_IMAGE`` (required): the image by digest, ``host[:port]/path@sha256:<64 hex>``; a tag is
  refused (it can move).
- ``MODEL_FETCH_DIR`` (default ``/model-image``): the files end under ``$MODEL_FETCH_DIR/model/``.
  It may be a volume's root: only ``model/``, ``.digest`` and a staging directory are written in it.
- ``MODEL_REGISTRY_PLAIN_HTTP``: ``1`` or ``true`` for a registry without TLS (tests; never in
  production); ``0``, ``false`` or empty for HTTPS (the default).
- ``REGISTRY_AUTH_FILE``: a container auth file with the registry's credentials (a
  ``kubernetes.io/dockerconfigjson`` Secret's ``.dockerconfigjson`` key mounted as a file); it must
  exist when set. Without it, ``$XDG_RUNTIME_DIR/containers/auth.json``, ``$DOCKER_CONFIG/config.json``
  and ``~/.docker/config.json`` are read, and with none the pull is anonymous.

Prints one line: ``fetched <MODEL_IMAGE> into <dir>/model (N files)`` (or that the directory
already holds it) on stdout, or the reason it failed on stderr.

Exit codes: 0 fetched (or already there); 2 bad input (no or an invalid ``MODEL_IMAGE``, a bad
setting, an unreadable auth file, a bad artifact: a digest mismatch, unsafe layer entries, not
exactly one layer) or ``MODEL_FETCH_DIR`` cannot be written; 3 the registry cannot be reached or
answered with an HTTP error (a missing manifest, refused credentials).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from services.contract import MODEL_IMAGE_ENV, MODEL_IMAGE_MOUNT
from services.model_image import MODEL_PATH, ArtifactError
from services.registry_client import STAGING_PREFIX, RegistryError, parse_reference, pull

EXIT_OK, EXIT_BAD_INPUT, EXIT_REGISTRY = 0, 2, 3
DEFAULT_DIR = MODEL_IMAGE_MOUNT
#: The marker of a complete pull: the manifest digest, written after the files are in place.
MARKER = ".digest"
_TRUE, _FALSE = ("1", "true"), ("", "0", "false")


class _BadInput(Exception):
    """A setting that cannot be used; the message names it."""


def _settings(environ: Mapping[str, str]) -> tuple[str, Path, bool]:
    """``MODEL_IMAGE`` (checked to be by digest), ``MODEL_FETCH_DIR`` and whether to talk plain HTTP."""
    image = environ.get(MODEL_IMAGE_ENV, "").strip()
    if not image:
        raise _BadInput(f"{MODEL_IMAGE_ENV} is not set: name the model image by digest (host/path@sha256:<64 hex>)")
    try:
        reference = parse_reference(image)
    except ArtifactError as exc:
        raise _BadInput(f"{MODEL_IMAGE_ENV}: {exc}") from exc
    if reference.digest is None:
        raise _BadInput(
            f"{MODEL_IMAGE_ENV}={image!r} names a tag, which can move: pin the image by digest (@sha256:...)"
        )
    plain = environ.get("MODEL_REGISTRY_PLAIN_HTTP", "").strip().lower()
    if plain not in _TRUE + _FALSE:
        raise _BadInput(f"MODEL_REGISTRY_PLAIN_HTTP={plain!r}: use 1 or true (no TLS), 0, false or nothing (HTTPS)")
    auth_file = environ.get("REGISTRY_AUTH_FILE", "")
    if auth_file and not os.path.isfile(auth_file):
        raise _BadInput(f"REGISTRY_AUTH_FILE={auth_file!r} is not a file (is the pull Secret mounted there?)")
    return image, Path(environ.get("MODEL_FETCH_DIR") or DEFAULT_DIR), plain in _TRUE


def _count_files(directory: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(directory))


def _complete(directory: Path, digest: str) -> bool:
    """Whether ``directory`` holds a finished pull of ``digest`` (its marker says so)."""
    try:
        return (directory / MARKER).read_text().strip() == digest and (directory / MODEL_PATH).is_dir()
    except (OSError, UnicodeDecodeError):
        return False


def _write_marker(directory: Path, digest: str) -> None:
    """Write the marker atomically (a temporary file in ``directory``, then a rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{MARKER}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(digest + "\n")
        os.replace(tmp, directory / MARKER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(image: str, directory: Path, plain_http: bool) -> tuple[bool, int]:
    """Pull ``image`` (by digest) into ``directory/model`` unless a complete pull of it is there;
    returns (whether it pulled, how many files ``directory/model`` holds). Leftovers of an
    interrupted earlier run (staging directories, temporary markers) are removed first."""
    digest = str(parse_reference(image).digest)
    if _complete(directory, digest):
        return False, _count_files(directory / MODEL_PATH)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).unlink(missing_ok=True)  # no marker while the files change
    for leftover in directory.iterdir():
        if leftover.name.startswith(STAGING_PREFIX) and leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.name.startswith(f"{MARKER}.") and leftover.name.endswith(".tmp"):
            leftover.unlink(missing_ok=True)
    pull(image, directory, plain_http=plain_http, plain_http_setting="MODEL_REGISTRY_PLAIN_HTTP=1")
    _write_marker(directory, digest)
    return True, _count_files(directory / MODEL_PATH)


def main() -> int:
    """Run the init container's fetch from the environment; the exit code (module docstring)."""
    try:
        image, directory, plain_http = _settings(os.environ)
        pulled, count = fetch(image, directory, plain_http)
    except _BadInput as exc:
        print(f"fetch_model: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RegistryError as exc:
        print(f"fetch_model: {exc}", file=sys.stderr)
        return EXIT_REGISTRY
    except ArtifactError as exc:
        print(f"fetch_model: refused: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        where = exc.filename if exc.filename is not None else os.environ.get("MODEL_FETCH_DIR") or DEFAULT_DIR
        print(f"fetch_model: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if pulled:
        print(f"fetched {image} into {directory / MODEL_PATH} ({count} files)")
    else:
        print(f"{directory / MODEL_PATH} already holds {image} ({count} files); nothing fetched")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
