"""The few git operations the release commands need. Only ``make bootstrap`` changes git state
(it commits, through :func:`git`); every other command leaves committing to a person."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from generator.release.errors import Refused, ToolFailed

#: What "a clean tree" covers: the release state and the spec it depends on.
RELEASE_PATHS = ("overlays", "platform.yaml", "registry")
#: The override of the clean-tree check, for scripts that put several edits into one commit.
ALLOW_DIRTY_ENV_VAR = "ML_GITOPS_ALLOW_DIRTY"


def git_bytes(root: Path, *args: str) -> bytes:
    """Run ``git -C root args`` and return stdout; raise ToolFailed carrying stderr on failure."""
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    except OSError as exc:
        raise ToolFailed(f"cannot run git: {exc}") from exc
    if proc.returncode != 0:
        raise ToolFailed(f"git {' '.join(args[:2])} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def git(root: Path, *args: str) -> str:
    """``git_bytes`` decoded as text."""
    return git_bytes(root, *args).decode(errors="replace")


def ensure_clean(root: Path) -> None:
    """Refuse when overlays/, platform.yaml or registry/ has uncommitted (or untracked) changes."""
    try:
        inside = git(root, "rev-parse", "--is-inside-work-tree").strip()
    except ToolFailed as exc:
        raise Refused(f"{root} is not a git work tree, so a clean tree cannot be checked ({exc})") from exc
    if inside != "true":
        raise Refused(f"{root} is not a git work tree")
    out = git(root, "status", "--porcelain", "--untracked-files=all", "--", *RELEASE_PATHS)
    dirty = [line[3:] for line in out.splitlines() if line.strip()]
    if dirty:
        shown = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
        raise Refused(
            f"uncommitted changes in {shown}: commit or stash them first, so this change is one reviewable "
            f"commit (or put several edits in one commit on purpose: --allow-dirty, or {ALLOW_DIRTY_ENV_VAR}=1)"
        )


def resolve_revision(root: Path, rev: str) -> str:
    """The commit id a revision names; Refused when it names none."""
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except ToolFailed as exc:
        raise Refused(f"{rev!r} is not a revision of the repository at {root}") from exc


def export_tree(root: Path, commit: str, paths: tuple[str, ...], dest: Path) -> list[str]:
    """Write ``paths`` as they are at ``commit`` into ``dest`` (``git archive``: no worktree, no
    index, no change to the repository). Returns the paths that exist at that commit."""
    present = [p for p in paths if git(root, "ls-tree", "--name-only", commit, "--", p).strip()]
    if not present:
        return []
    data = git_bytes(root, "archive", "--format=tar", commit, "--", *present)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return present
