"""``python -m generator.tools [--all] [TOOL ...]``: provide kubectl and helm, and print the table
of tools with each one's status.

kubectl and helm, what ``make synth`` needs, are always bootstrapped (this writes
``.tools/tools.json``, the stamp ``make`` checks); so is each TOOL named, and with ``--all`` every
tool that can be extracted or installed. Then one line per binary of the table: its version and
where it is, or how to get it. Nothing else is downloaded, so the optional and heavy ones stay
as they are until asked for. ``--markdown`` prints the table as generator/tools/README.md shows
it. Exit 2 when a tool asked for cannot be had.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from generator.tools.base import Bootstrapped, ToolError
from generator.tools.located import Located
from generator.tools.npm import NpmLock
from generator.tools.table import KUBERNETES_CLIENTS, SOURCES, TOOLS, Source


def provide(source: Source) -> None:
    """Bootstrap or install the source's binaries (a located one can only be found)."""
    if isinstance(source, Bootstrapped):
        source.bootstrap()
    elif isinstance(source, NpmLock):
        for binary in source.binaries:
            source.path(binary.name)


def markdown() -> str:
    """The table as README.md shows it."""
    lines = ["| Binary | Where it comes from | Versions that fit | What runs it |", "|---|---|---|---|"]
    for source in SOURCES:
        for binary in source.binaries:
            if isinstance(source, Located):
                origin, versions = source.origin(binary.name), "any"
            else:
                origin, versions = source.origin, "the lock's"
            if isinstance(source, Bootstrapped):
                origin = f"`PATH` when it fits, else extracted from {source.origin}"
            versions = str(binary.versions) if binary.versions else versions
            lines.append(f"| `{binary.name}` | {origin} | {versions} | {binary.used_by} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Provide what was asked for, then print every binary's status."""
    parser = argparse.ArgumentParser(prog="python -m generator.tools", description=__doc__.split("\n\n")[0])
    parser.add_argument("tools", nargs="*", metavar="TOOL", help=f"also provide these: {', '.join(TOOLS)}")
    parser.add_argument("--all", action="store_true", help="provide every tool that can be extracted or installed")
    parser.add_argument("--markdown", action="store_true", help="print the table as generator/tools/README.md has it")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown())
        return 0
    unknown = [name for name in args.tools if name not in TOOLS]
    if unknown:
        parser.error(f"not in the table: {', '.join(unknown)} (the table has {', '.join(TOOLS)})")
    wanted = [KUBERNETES_CLIENTS, *(TOOLS[name] for name in args.tools)]
    wanted += [source for source in SOURCES if args.all and not isinstance(source, Located)]
    status = 0
    for source in dict.fromkeys(wanted):
        try:
            provide(source)
        except (ToolError, subprocess.CalledProcessError, OSError) as exc:
            print(f"tools: {exc}", file=sys.stderr)
            if source is KUBERNETES_CLIENTS:
                return 2
            status = 2
    for source in SOURCES:
        for found in source.found():
            print(found.line())
            if found.path is None and found.name in args.tools:
                status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
