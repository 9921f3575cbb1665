"""What the tests of ``make validate`` on bad input share: a throwaway copy of the repository,
a snapshot to prove nothing changed, and the real command run on it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from generator.paths import REPO_ROOT

COPIED = ("platform.yaml", "overlays", "argocd", "registry")
#: What the fresh synth of the freshness check imports and reads, linked rather than copied.
LINKED = ("generator", "charts", "services", ".tools", "requirements")


def copy_repo(dest: Path) -> Path:
    """Copy what validate reads into ``dest``, linking what the fresh synth imports; return ``dest``."""
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        elif source.is_file():
            shutil.copy(source, dest / name)
    for name in LINKED:
        if (REPO_ROOT / name).exists():
            (dest / name).symlink_to(REPO_ROOT / name)
    return dest


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every copied file's bytes and mtime (a FIFO by its mtime alone: it is never read)."""
    out = {}
    for name in COPIED:
        for path in [root / name, *sorted((root / name).rglob("*"))]:
            if path.is_file() or path.is_fifo():
                out[str(path.relative_to(root))] = (
                    path.read_bytes() if path.is_file() else b"",
                    path.stat().st_mtime_ns,
                )
    return out


def validate(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generator", "validate", "--root", str(root), "--no-secrets", "--no-kubeconform", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def findings(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if not line.startswith("validate: ")]


def assert_no_crash(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("validate: ")]
    assert not errors, errors  # a crash prints "validate: <error>" to stderr, findings go to stdout
