"""Writing a decision into git: STEP and ABORT as one commit each, through the ``make canary``
edit (``generator/release/canary.py``: weights, replica split, promotion at 100); a HOLD as an
empty commit. Optionally pushed; a push the remote refuses (it moved) undoes the commit, so
nothing changes and the next run evaluates again."""

from __future__ import annotations

from pathlib import Path

from generator.files import write_atomic
from generator.release import canary as canary_edit
from generator.release.errors import ToolFailed
from generator.release.git import git
from generator.release.overlay import Overlay
from generator.release.trailers import Trailer, message, release_trailers

#: The Release-Action of a decision commit (make insights shows it).
ACTION = "canary-analyze"


def _head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def commit_edit(overlay: Overlay, weight: int, subject: str, body: str, trailers: list[Trailer]) -> str:
    """Apply the canary edit to ``weight``, write it (the overlay must still build) and commit
    exactly its files; on any failure every file is restored. Returns the commit."""
    root = overlay.root
    edit = canary_edit.step(overlay, weight)
    paths = overlay.commit()
    everything = [*trailers, *release_trailers(ACTION, [overlay.env.name], weight=weight)]
    text = message(subject, f"{edit.title}\n" + "\n".join(f"  {c}" for c in edit.changes) + f"\n\n{body}", everything)
    try:
        git(root, "commit", "--quiet", "--message", text, "--", *paths)
    except BaseException:
        for f in overlay.changed_files():
            write_atomic(f.path, f.original)
        git(root, "reset", "--quiet", "--", *paths)
        raise
    return _head(root)


def commit_empty(root: Path, subject: str, body: str, trailers: list[Trailer]) -> str:
    """An empty commit on HEAD (a HOLD's explanation): made from HEAD's tree, so neither the index
    nor the working tree is read or changed; HEAD moves only if it did not move meanwhile."""
    head = _head(root)
    tree = git(root, "rev-parse", "HEAD^{tree}").strip()
    new = git(root, "commit-tree", tree, "-p", head, "-m", message(subject, body, trailers).rstrip("\n")).strip()
    git(root, "update-ref", "-m", f"{ACTION}: {subject}", "HEAD", new, head)
    return new


def push(root: Path, remote: str, branch: str, before: str) -> None:
    """Push HEAD to ``remote``'s ``branch``; when refused, reset to ``before`` (the files as they
    were) and fail (exit 3), so the decision is made again on the remote's history next time."""
    try:
        git(root, "push", "--quiet", remote, f"HEAD:refs/heads/{branch}")
    except ToolFailed as exc:
        git(root, "reset", "--quiet", "--keep", before)
        raise ToolFailed(
            f"the push to {remote} {branch} was refused ({exc}); the decision commit was undone and nothing "
            "changed: the next run evaluates again on the remote's history"
        ) from exc
