"""promtool and the prometheus server, for the monitoring tests (``promtool test rules`` on the
generated rules, and a live Prometheus scraping the real model server).

Found on PATH when the version fits, else taken from Debian's ``prometheus`` package
(:mod:`generator.tools.debian`). Run ``python -m generator.tools.prometheus`` to bootstrap and
print the versions in use.
"""

from __future__ import annotations

import re
import sys

from generator.tools import debian

# What "a fitting version" means: Prometheus 2 from 2.42 (Debian bookworm's) on. The rule unit
# tests assume Prometheus 2's range selection (both ends of a range included); 3.x changed it.
MAJOR, MIN_MINOR = 2, 42


def fits(version: str) -> bool:
    """Tell whether a reported version is one the monitoring tests are written for."""
    numbers = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if numbers is None:
        return False
    return int(numbers[1]) == MAJOR and int(numbers[2]) >= MIN_MINOR


PROMETHEUS = debian.DebianTool(
    package="prometheus",
    binaries=("promtool", "prometheus"),
    version_pattern=r"\bversion (\d+\.\d+\.\d+)",
    fits=fits,
    wanted=f"Prometheus {MAJOR}.{MIN_MINOR}+ ({MAJOR}.x)",
)


def promtool_path() -> str:
    """Path of the promtool binary to use (bootstrapping it on first use)."""
    return PROMETHEUS.path("promtool")


def prometheus_path() -> str:
    """Path of the prometheus server binary to use (bootstrapping it on first use)."""
    return PROMETHEUS.path("prometheus")


if __name__ == "__main__":
    sys.exit(debian.main(PROMETHEUS))
