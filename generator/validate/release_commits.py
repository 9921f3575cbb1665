"""Release commits that do not say what they are: in a pull request (``--base REV``), each commit
that changes an environment's release state without a ``Release-Action`` trailer (the release
commands print the ``git commit`` that adds them: ``generator/release/trailers.py``) gets a note.

A note, never a finding: hand edits stay possible, and ``make insights`` still counts them from
the release state's diff. A ``git revert`` (its ``This reverts commit`` line) says what it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generator.config import Platform
from generator.insights.failures import REVERT_LINE
from generator.insights.gitlog import CatFile, GitError, commits_between, run_git
from generator.insights.history import env_state


def base_problem(root: Path, base: str) -> str | None:
    """Why ``--base`` names no commit here (a typo, or a shallow clone without it), or None."""
    try:
        run_git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except GitError:
        return f"--base {base}: no such commit here (a shallow clone needs fetch-depth: 0)"
    return None


def untold_releases(root: Path, platform: Platform, base: str) -> list[str]:
    """One note per commit in ``base..HEAD`` that changes a release state and carries no trailers."""
    try:
        return _untold(root, platform, base)
    except GitError as exc:
        return [f"release trailers not checked: {exc}"]


def _untold(root: Path, platform: Platform, base: str) -> list[str]:
    commits = commits_between(root, base)
    notes = []
    parsed: dict[str, list[Any]] = {}
    with CatFile(root) as cat:
        for commit in commits:
            if commit.trailer("Release-Action") or REVERT_LINE.search(commit.body) or not commit.parents:
                continue
            changed = [
                env.name
                for env in platform.environments
                if env_state(cat, parsed, commit.parents[0], env, platform)
                != env_state(cat, parsed, commit.sha, env, platform)
            ]
            if changed:
                notes.append(
                    f"commit {commit.sha[:12]} ({commit.subject[:60]}) changes the release state of "
                    f"{', '.join(changed)} without Release-* trailers: the release commands print the "
                    f"git commit that adds them (make insights still counts it, by its diff)"
                )
    return notes
