"""``make canary-history ENV=prod-canary``: every decision of make canary-analyze in an
environment so far, oldest first, as a table read from the decision commits' trailers
(``--json`` for a program). Exit 0, 2 for an unknown or non-canary environment, 3 when git fails."""

from __future__ import annotations

import argparse
import json

from generator.canary import history, report
from generator.release import cli
from generator.release.errors import EXIT_OK
from generator.release.overlay import find_env, load_platform, resolve_root
from generator.strategy import CANARY

COLUMNS = ("time", "commit", "decision", "weight", "model digest", "analysis window", "reason")


def rows(args: argparse.Namespace) -> list[dict[str, str]]:
    """One row per decision commit of the environment."""
    root = resolve_root(args.repo)
    env = find_env(load_platform(root), args.env)
    env.strategy.require(CANARY, env.name)
    out = []
    for commit in history.decisions(root, env.name, args.rev):
        first = {
            key: (commit.trailer(key) or [""])[0]
            for key in (history.DECISION, history.WEIGHT, history.WINDOW, history.REASON)
        }
        out.append(
            {
                "time": report.iso(commit.commit_time),
                "commit": commit.sha[:12],
                "decision": first[history.DECISION],
                "weight": first[history.WEIGHT],
                "model digest": ", ".join(commit.trailer(history.DIGEST)),
                "analysis window": first[history.WINDOW],
                "reason": first[history.REASON],
            }
        )
    return out


def canary_history(args: argparse.Namespace) -> int:
    found = rows(args)
    if args.json:
        print(json.dumps(found, indent=2))
        return EXIT_OK
    if not found:
        print(f"canary-history: no decision of make canary-analyze in {args.env} on {args.rev}")
        return EXIT_OK
    table = [COLUMNS, *(tuple(row[c] for c in COLUMNS) for row in found)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("canary-history", __doc__, edits=False)
    p.add_argument("--env", required=True, help="a canary environment")
    p.add_argument("--rev", default="HEAD", help="the history to read (default: HEAD)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return cli.run("canary-history", p, argv, canary_history)


if __name__ == "__main__":
    import sys

    sys.exit(main())
