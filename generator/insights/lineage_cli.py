"""``python -m generator lineage``: which model version, digest, card accuracy and images each
environment (each slot or track) ran, from which commit to which, read from git alone.

``--at`` keeps the rows in force at that time; ``--model sha256:...`` the rows where that model
digest (or model image digest) took production traffic, in every environment unless ``--env``.
Exit codes: 0 printed (an empty selection says so); 2 bad input; 3 git failed.
"""

from __future__ import annotations

import argparse

from generator.insights.cli import EXIT_OK, common_arguments, load, parse_time, run
from generator.insights.lineage import LineageRow, iso, lineage, select

HEADER = ("ENV", "VARIANT", "MODEL", "VERSION", "DIGEST", "ACCURACY", "TRAFFIC", "SERVER", "FROM", "TO")


def _cells(row: LineageRow) -> tuple[str, ...]:
    return (
        row.env,
        row.variant or "-",
        row.model,
        row.version or "-",
        (row.digest or "-")[:19],
        "-" if row.accuracy is None else f"{row.accuracy:g}",
        "-" if row.traffic is None else f"{row.traffic}%",
        (row.server or "-").rsplit("/", 1)[-1][:40],
        f"{row.from_commit[:8]} {iso(row.from_time)}",
        "now" if row.to_commit is None else f"{row.to_commit[:8]} {iso(row.to_time or 0)}",
    )


def table(rows: list[LineageRow]) -> list[str]:
    """The rows as aligned text columns, under a header."""
    cells = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, walk the history and print the selected lineage rows."""
    parser = argparse.ArgumentParser(prog="python -m generator lineage", description=__doc__)
    common_arguments(parser)
    parser.add_argument("--env", help="one environment (default: every environment)")
    parser.add_argument("--at", help="only the rows in force at this ISO 8601 time")
    parser.add_argument("--model", help="only where this model digest (sha256:...) was live")
    args = parser.parse_args(argv)
    return run("lineage", lambda: print_lineage(args))


def print_lineage(args: argparse.Namespace) -> int:
    """Walk the history and print the rows that match."""
    at = parse_time(args.at) if args.at else None
    loaded = load(args.repo, args.rev, args.env, "all", args.until)
    rows = select(lineage(loaded.history, args.env), at, args.model)
    if not rows:
        print("lineage: no rows match")
        return EXIT_OK
    print("\n".join(table(rows)))
    return EXIT_OK
