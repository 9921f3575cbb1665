"""promtool and the prometheus server, for the monitoring tests (``promtool test rules`` on the
generated rules, and a live Prometheus scraping the real model server).

Found on PATH when the version fits, else taken from Debian's ``prometheus`` package: the table's
``PROMETHEUS`` entry (versions, package), bootstrapped by :mod:`generator.tools.debian`. Run
``python -m generator.tools.prometheus`` to bootstrap them and print the versions in use (the stamp
``.tools/prometheus.json`` that ``make test`` checks).
"""

from __future__ import annotations

import sys

from generator.tools.table import PROMETHEUS


def promtool_path() -> str:
    """Path of the promtool binary to use (bootstrapping it on first use)."""
    return PROMETHEUS.path("promtool")


def prometheus_path() -> str:
    """Path of the prometheus server binary to use (bootstrapping it on first use)."""
    return PROMETHEUS.path("prometheus")


if __name__ == "__main__":
    sys.exit(PROMETHEUS.main())
