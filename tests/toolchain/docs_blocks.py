"""The fenced code blocks of the repository's Markdown pages, their ``docs-test`` annotations, and
what running them takes: a scratch clone of the repository, a shell command run there, a server
started in the background and stopped by its process group. Used by ``test_docs_code_blocks.py``
(its docstring says what each annotation means)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from loopback import free_ports

from generator.validate.repofiles import tracked_files

OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
ANNOTATION = re.compile(r"^[ \t]*<!--[ \t]*docs-test:[ \t]*(?P<text>.*?)[ \t]*-->[ \t]*$")
NOT_RUN = re.compile(r"not run here: (?P<reason>\S.*)")
SKIP = re.compile(r"skip `(?P<command>[^`]+)`: (?P<reason>\S.*)")
OUTPUT = re.compile(r"output checked by (?P<check>[a-z0-9-]+)")
COMMIT_EACH_STEP = "commit each step"

GIT_IDENTITY = {"user.name": "docs-test", "user.email": "docs-test@example.com", "commit.gpgsign": "false"}
#: Dated long ago in a scratch clone, so the stamps `make` checks in the shared .venv and .tools
#: are newer than every lock file and tool module: `make` never reinstalls into them from a clone.
OLD_MTIME = 946684800  # 2000-01-01
SHARED_TOOLCHAIN = (".venv", ".tools")


@dataclass(frozen=True)
class Annotation:
    line: int
    text: str


@dataclass(frozen=True)
class Block:
    """One fenced block: where it opens (``file:line``), its language and its dedented body."""

    file: str
    line: int
    language: str
    body: str
    annotations: tuple[Annotation, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    def directive(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return [m for a in self.annotations if (m := pattern.fullmatch(a.text))]

    @property
    def not_run(self) -> str | None:
        found = self.directive(NOT_RUN)
        return found[0]["reason"] if found else None

    @property
    def skipped(self) -> dict[str, str]:
        return {m["command"]: m["reason"] for m in self.directive(SKIP)}

    @property
    def output_check(self) -> str | None:
        found = self.directive(OUTPUT)
        return found[0]["check"] if found else None

    @property
    def commit_each_step(self) -> bool:
        return any(a.text == COMMIT_EACH_STEP for a in self.annotations)

    def unknown_annotations(self) -> list[Annotation]:
        known = (NOT_RUN, SKIP, OUTPUT)
        return [
            a for a in self.annotations if a.text != COMMIT_EACH_STEP and not any(p.fullmatch(a.text) for p in known)
        ]


@dataclass
class Page:
    file: str
    blocks: list[Block] = field(default_factory=list)
    #: ``file:line: what is wrong`` for what is not a block: an annotation no fence follows, a
    #: fence that never closes.
    problems: list[str] = field(default_factory=list)


def _dedent(lines: list[str], indent: str) -> str:
    return "".join(line[len(indent) :] if line.startswith(indent) else line.lstrip(" \t") for line in lines)


def parse_page(file: str, text: str) -> Page:
    """The fenced blocks of one Markdown page, with the ``<!-- docs-test: ... -->`` lines right
    above each opening fence (nothing else between them and the fence, not even a blank line)."""
    page = Page(file)
    pending: list[Annotation] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\n")
        annotation = ANNOTATION.match(raw)
        opening = OPENING.match(raw)
        if annotation:
            pending.append(Annotation(i + 1, annotation["text"]))
            i += 1
            continue
        if not opening:
            page.problems += [f"{file}:{a.line}: a docs-test annotation no code fence follows" for a in pending]
            pending = []
            i += 1
            continue
        fence, indent = opening["fence"], opening["indent"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j].rstrip("\n"))), None)
        if end is None:
            page.problems.append(f"{file}:{i + 1}: a code fence that never closes")
            break
        language = opening["info"].split()[0] if opening["info"].split() else ""
        page.blocks.append(Block(file, i + 1, language, _dedent(lines[i + 1 : end], indent), tuple(pending)))
        pending = []
        i = end + 1
    page.problems += [f"{file}:{a.line}: a docs-test annotation no code fence follows" for a in pending]
    return page


def markdown_pages(root: Path) -> list[Page]:
    """Every Markdown page git knows about or would add (not ignored ones), parsed."""
    return [parse_page(rel, (root / rel).read_text()) for rel in tracked_files(root) if rel.endswith(".md")]


# --- shell blocks ---------------------------------------------------------------


def strip_comment(line: str) -> str:
    """``line`` without a shell comment: a ``#`` that starts a word outside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def shell_commands(body: str) -> list[str]:
    """The commands of a shell block, one per logical line (``\\`` continuations joined, comments
    and blank lines dropped)."""
    commands, current = [], ""
    for line in body.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1].rstrip() + " "
            continue
        command = strip_comment(current + line.strip()).strip()
        current = ""
        if command:
            commands.append(re.sub(r"[ \t]+", " ", command))
    return commands


# --- scratch clones -----------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def scratch_clone(root: Path, dest: Path) -> Path:
    """A git repository at ``dest`` holding ``root``'s working tree (tracked and untracked files,
    not ignored ones) as one commit, sharing ``root``'s .venv and .tools (the bootstrapped
    toolchain), with a git identity of its own; its files are dated :data:`OLD_MTIME`."""
    dest.mkdir(parents=True)
    for rel in tracked_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
        os.utime(dest / rel, (OLD_MTIME, OLD_MTIME))
    for name in SHARED_TOOLCHAIN:
        if (root / name).exists():
            os.symlink(root / name, dest / name)
    git(dest, "-c", "init.defaultBranch=main", "init", "-q")
    for key, value in GIT_IDENTITY.items():
        git(dest, "config", key, value)
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "the working tree of the repository under test")
    return dest


def copy_clone(clone: Path, dest: Path) -> Path:
    """A private copy of a scratch clone, its .git and ignored files (models/, .cache/) included."""
    shutil.copytree(clone, dest, symlinks=True)
    return dest


def commit_all(clone: Path, message: str) -> bool:
    """Commit every change (untracked files too); False when there was nothing to commit."""
    if not git(clone, "status", "--porcelain", "--untracked-files=all").strip():
        return False
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", message)
    return True


# --- processes ------------------------------------------------------------------------


@dataclass
class Run:
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return (
            f"$ {self.command}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


def run_shell(command: str, cwd: Path, env: dict[str, str], timeout: float = 900) -> Run:
    """``command`` in bash (``pipefail``), in ``cwd``."""
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return Run(command, proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Server:
    """A server command running in the background in a session (process group) of its own."""

    command: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int
    grpc_port: int
    metrics_port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 60) -> None:
    """SIGTERM the process group ``proc`` leads (what we started, nothing else), wait until it is
    gone, SIGKILL what is left after ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def serving(command: str, cwd: Path, env: dict[str, str], log_dir: Path, timeout: float = 180) -> Iterator[Server]:
    """Run a model server command (``make serve``) in the background with ``PORT``,
    ``GRPC_PORT`` and ``METRICS_PORT`` free loopback ports; yield once ``/v2/health/ready`` answers 200; stop its
    process group at the end. A port taken between picking and binding is picked again."""
    for attempt in range(3):
        port, grpc_port, metrics_port = free_ports(3)
        log_path = log_dir / f"server-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=cwd,
                env={**env, "PORT": str(port), "GRPC_PORT": str(grpc_port), "METRICS_PORT": str(metrics_port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(command, proc, log_path, port, grpc_port, metrics_port)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    break
                try:
                    if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{command}: not ready after {timeout:.0f}s:\n{server.log()[-4000:]}")
                time.sleep(0.1)
            if proc.poll() is not None:
                if attempt < 2 and "in use" in server.log():
                    continue
                raise AssertionError(f"{command}: exited with {proc.returncode} before it was ready:\n{server.log()}")
            yield server
            return
        finally:
            _stop_group(proc)
    raise AssertionError("unreachable")
