"""What the preview suites share: a throw-away git repository whose ``main`` is this checkout's
release state, commits on a pull request's branch, and the real ``make preview-render`` run on it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from generator.paths import REPO_ROOT

#: What a preview render reads on the default branch and at the pull request's head.
COPIED = ("platform.yaml", "overlays", "argocd", "registry")
GIT_ID = ["-c", "user.name=preview-tests", "-c", "user.email=preview-tests@example.com", "-c", "commit.gpgsign=false"]
PR = "7"


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; its stdout."""
    return subprocess.run(["git", *GIT_ID, "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def make_repo(dest: Path) -> Path:
    """A repository with this checkout's release state committed on ``main``."""
    dest.mkdir(parents=True)
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "release state")
    return dest


def pull_request(root: Path, message: str = "a pull request") -> str:
    """Commit the working tree's changes on branch ``pr`` (created from main); the head commit."""
    if git(root, "branch", "--show-current").strip() != "pr":
        git(root, "checkout", "-q", "-b", "pr")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def preview_render(root: Path, pr: str, sha: str, out: Path | None = None) -> subprocess.CompletedProcess:
    """``make preview-render PR= SHA= [OUT=]`` on ``root``."""
    args = ["--pr", pr, "--sha", sha, "--root", str(root), *(["--out", str(out)] if out else [])]
    return subprocess.run(
        [sys.executable, "-m", "generator", "preview-render", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def manifests(out: Path) -> list[dict]:
    """Every object written under ``out`` (the Applications and what each deploys)."""
    return [doc for path in sorted(out.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def add_to_preview(root: Path, name: str, text: str) -> None:
    """A new resource file in ``overlays/preview``, listed in its kustomization (as a pull
    request could: the workload is built at the pull request's head)."""
    overlay = root / "overlays/preview"
    (overlay / name).write_text(text)
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("- ../staging\n", f"- ../staging\n- {name}\n", 1))
