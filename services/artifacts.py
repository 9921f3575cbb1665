"""The digest of a published model version: one definition for the trainer, the registry and the server.

A version directory (``<model root>/<model>/<version>/``) is identified by the sha256 of its
manifest: one line ``<sha256 of the file>  <path>\\n`` per regular file under it, the path relative
to the directory with ``/`` separators, sorted by the path's UTF-8 bytes. That manifest is exactly
what ``sha256sum`` prints, so anyone can recompute a digest without this code::

    cd models/mnist/3 && find . -type f -printf '%P\\0' | LC_ALL=C sort -z \\
        | xargs -0 sha256sum | sha256sum

Every file counts (the SavedModel, ``model.tflite``, ``metadata.json``, variables ...): a version
whose bytes differ in any file has another digest. A digest is written ``sha256:<64 hex>``, as
image digests are. Standard library only: the generator (no TensorFlow) imports it too.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from services.contract import DIGEST

DIGEST_PREFIX = "sha256:"
#: A version digest as written in cards, release files and ``MODEL_DIGEST``.
DIGEST_PATTERN = re.compile(DIGEST)
_CHUNK = 1 << 20


class ArtifactError(ValueError):
    """A version directory that cannot be digested (missing, unreadable, not regular files)."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of one file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(version_dir: Path) -> dict[str, str]:
    """``{relative posix path: hex sha256}`` of every regular file under ``version_dir``, sorted.

    Symbolic links and other non-regular entries are refused: a digest must describe bytes that
    live in the version directory itself.
    """
    digests, _ = read_version(version_dir, lambda _relative: False)
    return digests


def read_version(version_dir: Path, keep: Callable[[str], bool]) -> tuple[dict[str, str], dict[str, bytes]]:
    """The file digests of ``version_dir`` (as :func:`file_digests`) and the bytes of the files ``keep``
    selects (by relative path), each read once: the kept bytes are exactly the bytes digested.

    A reader that loads what it kept, never the files again, cannot be handed other bytes than the
    digest describes, whatever is written to the directory meanwhile (the server does this). Files
    are opened without following symbolic links and checked to be regular on the open descriptor.
    """
    if not version_dir.is_dir():
        raise ArtifactError(f"{version_dir}: not a directory")
    found: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(version_dir):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            relative = path.relative_to(version_dir).as_posix()
            try:
                mode = path.lstat().st_mode
                if stat.S_ISDIR(mode):
                    continue
                content = _read_regular(path, keep(relative)) if stat.S_ISREG(mode) else None
            except OSError as exc:
                raise ArtifactError(f"{version_dir}: cannot read {relative} ({exc.strerror or exc})") from exc
            if content is None:
                raise ArtifactError(f"{version_dir}: {relative} is not a regular file")
            found[relative], data = content
            if data is not None:
                kept[relative] = data
    if not found:
        raise ArtifactError(f"{version_dir}: holds no files")
    return dict(sorted(found.items(), key=lambda item: item[0].encode())), kept


def _read_regular(path: Path, keep: bool) -> tuple[str, bytes | None] | None:
    """(hex sha256, the bytes when ``keep``) of a regular file; None if it is not one when opened
    (replaced by a link or another kind of file since it was listed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        if keep:
            data = fh.read()
            return hashlib.sha256(data).hexdigest(), data
        digest = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), None


def manifest(digests: dict[str, str]) -> str:
    """The ``sha256sum``-format manifest of ``file_digests`` output (the digest's input)."""
    return "".join(f"{digests[path]}  {path}\n" for path in sorted(digests, key=str.encode))


def version_digest(digests: dict[str, str]) -> str:
    """``sha256:<hex>`` of the manifest of ``digests`` (see the module docstring)."""
    return DIGEST_PREFIX + hashlib.sha256(manifest(digests).encode()).hexdigest()


def digest_directory(version_dir: Path) -> str:
    """The version digest of a directory on disk."""
    return version_digest(file_digests(version_dir))
