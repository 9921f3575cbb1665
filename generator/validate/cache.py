"""A small content-addressed cache under ``.cache/validate/`` (git-ignored) for the two slow,
pure steps of ``make validate``: the detect-secrets scan (keyed by each file's content) and the
fresh ``make synth`` of the freshness check (keyed by every input of the generator). A warm run
redoes only what changed; deleting the directory is always safe."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

VERSION = 1


def cache_dir(root: Path) -> Path:
    return root / ".cache" / "validate"


def load(root: Path, name: str) -> dict:
    path = cache_dir(root) / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("entries", {}) if data.get("version") == VERSION else {}


def save(root: Path, name: str, entries: dict) -> None:
    directory = cache_dir(root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}-")
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": VERSION, "entries": entries}, handle)
        os.replace(tmp, directory / f"{name}.json")
    except OSError:
        pass  # a read-only checkout still validates, just without a warm cache


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(root: Path, paths: list[Path], extra: str = "", exclude: tuple[Path, ...] = ()) -> str:
    """One digest over the content of every file under ``paths`` (files or directories),
    leaving out anything under ``exclude``."""
    digest = hashlib.sha256(extra.encode())
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    files = [p for p in files if not any(p == e or e in p.parents for e in exclude)]
    for path in sorted(set(files)):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
