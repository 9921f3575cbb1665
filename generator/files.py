"""Writing a file so that a reader sees the old bytes or the new ones, never a part.

Every command that edits the repository (the release commands, ``make register``) and the tool
bootstrap write through ``write_atomic``: a temporary file in the same directory, then a rename.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

#: The mode a new file gets (an existing file keeps its own).
NEW_FILE_MODE = 0o644


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one rename; on any failure ``path`` is as it was.

    The file gets ``mode`` (an extracted binary: 0o755) with its bytes, else the mode it had."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
