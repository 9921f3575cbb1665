"""Reading git without a checkout: the commits of a history and file contents at any commit.

Two ``git log`` calls give every commit's parents and times and the first-parent chain with its
messages and trailers; one long-lived ``git cat-file --batch`` process answers every
``<commit>:<path>`` request, so a walk over a few hundred commits reads its files in well under a
second instead of starting one process per file per commit.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from generator.release.errors import ToolFailed
from generator.release.git import git as run_git

#: The separators of the log formats below: between fields, and between records.
FIELD, RECORD = "\x1f", "\x1e"
_LOG_FORMAT = FIELD.join(["%H", "%P", "%at", "%ct", "%s", "%B", "%(trailers:only=true,unfold=true)"]) + RECORD


#: A git command failed (not a git repository, an unknown revision): one line saying why. The
#: release commands' error, so git runs one way in both (exit 3).
GitError = ToolFailed


@dataclass(frozen=True)
class Commit:
    """One commit: its id, parents, author and committer times (Unix seconds), message and trailers."""

    sha: str
    parents: tuple[str, ...]
    author_time: int
    commit_time: int
    subject: str
    body: str
    trailers: tuple[tuple[str, str], ...] = ()

    def trailer(self, key: str) -> list[str]:
        """Every value of trailer ``key`` (case-insensitive, as git compares trailer keys)."""
        return [value for name, value in self.trailers if name.lower() == key.lower()]


def _trailers(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def first_parent_chain(root: Path, rev: str) -> list[Commit]:
    """The first-parent commits of ``rev``, oldest first, with messages and trailers: the order in
    which changes reached the branch Argo CD follows. A merge commit without trailers of its own
    ("Merge pull request #N") carries those of the commits it merges, where the release commands'
    trailers are."""
    out = run_git(root, "log", "--first-parent", f"--format={_LOG_FORMAT}", rev, "--")
    return [_with_merged_trailers(root, commit) for commit in _parse(out)[::-1]]


def _with_merged_trailers(root: Path, commit: Commit) -> Commit:
    if len(commit.parents) < 2 or commit.trailers:
        return commit
    out = run_git(
        root, "log", f"--format=%(trailers:only=true,unfold=true){RECORD}", f"{commit.parents[0]}..{commit.sha}"
    )
    merged = tuple(pair for record in reversed(out.split(RECORD)) for pair in _trailers(record))
    return replace(commit, trailers=merged)


def _parse(out: str) -> list[Commit]:
    """The commits of a ``git log --format=_LOG_FORMAT`` output, in its order."""
    commits = []
    for record in out.split(RECORD):
        record = record.strip("\n")
        if not record:
            continue
        sha, parents, author, committed, subject, body, trailers = record.split(FIELD)
        commits.append(
            Commit(sha, tuple(parents.split()), int(author), int(committed), subject, body, _trailers(trailers))
        )
    return commits


def commits_between(root: Path, base: str, head: str = "HEAD") -> list[Commit]:
    """The commits ``head`` has and ``base`` has not, merges left out, oldest first: what a pull
    request adds."""
    out = run_git(root, "log", "--no-merges", f"--format={_LOG_FORMAT}", f"{base}..{head}", "--")
    return _parse(out)[::-1]


def ancestry(root: Path, rev: str) -> dict[str, tuple[tuple[str, ...], int]]:
    """Every commit reachable from ``rev``: its parents and its author time (for lead times)."""
    out = run_git(root, "log", "--format=%H %at %P", rev, "--")
    graph = {}
    for line in out.splitlines():
        sha, author, *parents = line.split()
        graph[sha] = (tuple(parents), int(author))
    return graph


class CatFile:
    """One ``git cat-file --batch`` process, asked for ``<rev>:<path>`` one request at a time.

    Returns each file's object id with its bytes, so a caller can parse each distinct blob once."""

    def __init__(self, root: Path):
        try:
            self._proc = subprocess.Popen(
                ["git", "-C", str(root), "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}") from exc

    def read(self, rev: str, path: str) -> tuple[str, bytes] | None:
        """``(blob id, bytes)`` of ``path`` at ``rev``, or None where the path is no file there."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{rev}:{path}\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().decode().split()
        if not header:
            raise GitError(f"git cat-file ended while reading {rev}:{path}")
        if len(header) != 3:  # "<request> missing" or "ambiguous"
            return None
        oid, kind, size = header
        data = self._proc.stdout.read(int(size) + 1)[:-1]
        return (oid, data) if kind == "blob" else None

    def close(self) -> None:
        """End the process (its stdin closed, it exits)."""
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()

    def __enter__(self) -> CatFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
