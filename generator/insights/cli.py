"""``python -m generator insights``: the DORA keys and the model lineage of every environment,
from the repository's git history alone, written to ``build/insights/``.

Exit codes: 0 written; 2 bad input (an argument, an unknown environment, no platform.yaml at the
revision); 3 git failed. Nothing is written unless every figure was computed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from generator.config import Platform
from generator.inputs import InputError, load_yaml
from generator.insights.gitlog import GitError, run_git
from generator.insights.history import History, walk
from generator.insights.lineage import lineage
from generator.insights.metrics import ALL, Window, compute, duration
from generator.insights.outputs import deployment_rows, insights_document, write_all
from generator.paths import REPO_ROOT

EXIT_OK, EXIT_BAD_INPUT, EXIT_TOOL = 0, 2, 3
DEFAULT_SINCE = "90d"
_SPAN = re.compile(r"^([1-9][0-9]*)([hdw])$")
_SPAN_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400}


class BadInput(Exception):
    """An argument or the repository cannot be used: one line saying why (exit 2)."""


def parse_time(text: str) -> int:
    """An ISO 8601 time (``2026-12-01T12:00Z``; no zone means UTC) as Unix seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"not an ISO 8601 time: {text!r} (e.g. 2026-12-01T12:00Z)") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def parse_since(text: str, until: int) -> int | None:
    """``--since``: a span before ``until`` (``90d``, ``12w``, ``48h``), an ISO time, or ``all``
    (None: from the first commit)."""
    if text == "all":
        return None
    if match := _SPAN.match(text):
        return until - int(match[1]) * _SPAN_SECONDS[match[2]]
    return parse_time(text)


def platform_at(root: Path, rev: str) -> Platform:
    """platform.yaml as committed at ``rev``: the environments, their overlays and strategies."""
    try:
        text = run_git(root, "show", f"{rev}:platform.yaml")
    except GitError as exc:
        raise BadInput(f"no platform.yaml at {rev} in {root}: {exc}") from exc
    try:
        return Platform.model_validate(load_yaml(text, "platform.yaml"))
    except InputError as exc:
        raise BadInput(exc.problems[0]) from exc
    except ValidationError as exc:
        raise BadInput(f"platform.yaml at {rev} is invalid: {exc.errors()[0]['msg']}") from exc


@dataclass
class Loaded:
    """A walked history with the commit it ends at and its window."""

    history: History
    head: str
    window: Window


def load(repo: Path, rev: str, env: str | None, since: str, until: str | None) -> Loaded:
    """Walk the history of ``repo`` at ``rev`` (for one environment, or all) in the window."""
    root = repo.resolve()
    try:
        head = run_git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except GitError:
        run_git(root, "rev-parse", "--git-dir")  # not a repository at all: GitError (exit 3)
        raise BadInput(f"{rev!r} is not a commit of the repository at {root}") from None
    platform = platform_at(root, head)
    names = [e.name for e in platform.environments]
    if env is not None and env not in names:
        raise BadInput(f"unknown environment {env!r} (platform.yaml has: {', '.join(names)})")
    end = parse_time(until) if until is not None else int(time.time())
    start = parse_since(since, end)
    history = walk(root, platform, head, end, env)
    if start is None:
        start = min((c.commit_time for c in history.commits.values()), default=end)
    if start > end:
        raise BadInput(f"--since ({since}) is after --until")
    return Loaded(history, head, Window(start, end))


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments ``insights`` and ``lineage`` share: the repository, the revision, the end time."""
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="the repository (default: this checkout)")
    parser.add_argument("--rev", default="HEAD", help="the branch or commit whose first-parent history counts")
    parser.add_argument("--until", help="the window's end, ISO 8601 (default: now; fixed: the same bytes out)")


def summary(document: dict[str, Any]) -> list[str]:
    """One line per environment and one for all of them: the four keys with their counts."""
    lines = []
    scopes = {**document["environments"], ALL: {"figures": document["all"]}}
    for name, scope in scopes.items():
        f = scope["figures"]
        cfr = f["changeFailureRate"]
        rate = f"{cfr['value']:.0%}" if cfr["value"] is not None else cfr["status"]
        lead, restore = f["leadTime"], f["timeToRestore"]
        lines.append(
            f"{name:16} {f['deployments']['count']:3} deployments ({f['deployments']['perWeek'] or 0:.2f}/week), "
            f"lead time p50 {duration(lead['quantiles']['p50'])} ({lead['samples']} commits), "
            f"change failures {cfr['numerator']}/{cfr['denominator']} ({rate}; canary caught "
            f"{cfr['caughtByCanary']}), restore p50 {duration(restore['quantiles']['p50'])} "
            f"({restore['samples']})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, walk the history, write the four files and print a summary."""
    parser = argparse.ArgumentParser(prog="python -m generator insights", description=__doc__)
    common_arguments(parser)
    parser.add_argument("--since", default=DEFAULT_SINCE, help="90d, 12w, 48h, an ISO time or 'all' (default 90d)")
    parser.add_argument("--env", help="one environment (default: every environment in platform.yaml)")
    parser.add_argument("--out", type=Path, help="output directory (default: <repo>/build/insights)")
    args = parser.parse_args(argv)
    return run("insights", lambda: insights(args))


def run(name: str, body: Callable[[], int]) -> int:
    """A command's body, its refusals as one line each: bad input exit 2, git failed exit 3."""
    try:
        return body()
    except BadInput as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except GitError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_TOOL


def insights(args: argparse.Namespace) -> int:
    """Walk the history, write the files and print a summary."""
    started = time.monotonic()
    loaded = load(args.repo, args.rev, args.env, args.since, args.until)
    figures, failures = compute(loaded.history, loaded.window)
    rows = deployment_rows(loaded.history, loaded.window, failures)
    document = insights_document(loaded.history, loaded.window, loaded.head, figures, rows, lineage(loaded.history))
    out = args.out if args.out is not None else args.repo.resolve() / "build" / "insights"
    written = write_all(out, document)
    window = document["window"]
    print(f"insights: {window['since']} .. {window['until']}, {len(loaded.history.commits)} first-parent commits")
    print("\n".join(summary(document)))
    print(f"insights: wrote {', '.join(str(p) for p in written)} in {time.monotonic() - started:.1f}s")
    return EXIT_OK
