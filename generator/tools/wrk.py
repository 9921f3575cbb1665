"""wrk, the HTTP load generator of ``make bench``: from PATH when its version fits, else Debian's
package.

The table's ``WRK`` entry names Debian's ``wrk`` and the LuaJIT library it links;
:mod:`generator.tools.debian` extracts both into ``.tools/`` (nothing is installed system-wide) and
runs the extracted binary with ``LD_LIBRARY_PATH`` pointing at the library. Run
``python -m generator.tools.wrk`` to bootstrap it and print the version in use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from generator.tools.table import WRK


@dataclass(frozen=True)
class Wrk:
    """How to run wrk: the binary and the environment it needs."""

    path: str
    env: dict[str, str]


def wrk() -> Wrk:
    """The wrk to use (bootstrapping it on first use)."""
    path = WRK.path("wrk")
    return Wrk(path, WRK.environ(path))


if __name__ == "__main__":
    sys.exit(WRK.main())
