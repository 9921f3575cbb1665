"""The JSON Schemas written from the models: ``make schema`` writes them, ``make check`` (and a
test) fails when one in git is not what the models give.

They are the schemas editors show (``platform.yaml``'s first line names its own) and that
``make synth``, ``make validate`` and the release commands check files against; the models
(:mod:`generator.config`, :mod:`generator.release.files`) are their one declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from generator import config
from generator.files import write_atomic
from generator.model_schema import dumps
from generator.release import files as release_files

COMMAND = "make schema"
#: Each generated schema file and the function that gives its content.
SCHEMAS: dict[Path, Callable[[], dict[str, Any]]] = {
    config.SCHEMA_PATH: config.platform_schema,
    release_files.SCHEMA_PATH: release_files.release_files_schema,
}


def rendered() -> dict[Path, str]:
    """The text every schema file should hold."""
    return {path: dumps(schema(), COMMAND) for path, schema in SCHEMAS.items()}


def _differs(path: Path, text: str) -> bool:
    return not path.is_file() or path.read_text() != text


def stale() -> list[Path]:
    """The schema files whose content is not what the models give (or that are missing)."""
    return [path for path, text in rendered().items() if _differs(path, text)]


def write() -> list[Path]:
    """Write every stale schema file (atomically); the ones written."""
    changed = []
    for path, text in rendered().items():
        if _differs(path, text):
            write_atomic(path, text.encode())
            changed.append(path)
    return changed
