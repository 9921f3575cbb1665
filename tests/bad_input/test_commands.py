"""Bad input through the real command lines: one line per problem naming the file (and the path
inside it), the documented exit code, and nothing changed on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator.paths import REPO_ROOT


def copy_repo(dest: Path) -> Path:
    """What synth and validate read and write: platform.yaml, overlays/ and argocd/ (the generator
    and the chart are read from this checkout)."""
    shutil.copy(REPO_ROOT / "platform.yaml", dest / "platform.yaml")
    shutil.copytree(REPO_ROOT / "overlays", dest / "overlays")
    shutil.copytree(REPO_ROOT / "argocd", dest / "argocd")
    return dest


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "platform.yaml"
    }


def generator(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def edit(text: str) -> str:
    return text.replace("name: dev\n", 'name: "dev\\n"\n', 1)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("fifo", ["platform.yaml: not a regular file (a FIFO, device or directory is never read)"]),
        ("latin-1", ["platform.yaml: line 2: not UTF-8 (byte 0xe9 at offset"]),
        ("deep", ["platform.yaml: nested more than 64 levels deep"]),
        ("newline in a name", ["platform.yaml: environments[0].name: 'dev\\n' holds a control character ('\\n')"]),
    ],
)
def test_synth_refuses_bad_platform_yaml_with_exit_2_and_writes_nothing(tmp_path, case, says):
    root = copy_repo(tmp_path)
    config = root / "platform.yaml"
    if case == "fifo":
        config.unlink()
        os.mkfifo(config)
    elif case == "latin-1":
        config.write_bytes(b"# platform\nsystem: {name: caf\xe9}\n")
    elif case == "deep":
        config.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    else:
        config.write_text(edit(config.read_text()))
    before = snapshot(root)
    result = generator("synth", "--config", str(config), timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line[: len(says[0])] for line in lines[:-1]] == says and lines[-1].endswith("nothing was written")
    assert "Traceback" not in result.stderr
    assert snapshot(root) == before


def test_validate_names_a_fifo_in_an_overlay_instead_of_hanging(tmp_path):
    root = copy_repo(tmp_path)
    (root / "overlays/dev/scaling.yaml").unlink()
    os.mkfifo(root / "overlays/dev/scaling.yaml")
    result = generator("validate", "--root", str(root), "--no-freshness", "--no-secrets", "--no-kubeconform")
    assert result.returncode == 1, result.stderr
    assert "dev: kustomize build failed: " in result.stdout and "scaling.yaml: not a regular file" in result.stdout
