"""The facts of charts/inference-service that other constructs share: where it is, its name, and
its default values, which hold the repository's one definition of a restricted pod security
context (the chart is usable on its own, so its defaults must be the secure ones).

The chart's files are read on first use, not at import: importing a construct reads nothing."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import yaml

from generator.paths import REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "inference-service"


@cache
def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / name).read_text())


def chart_name() -> str:
    """The chart's name: its pods' ``app.kubernetes.io/name``, which other objects select by."""
    return _load("Chart.yaml")["name"]


def pod_security_context() -> dict[str, Any]:
    """Pod Security "restricted", as the chart's default ``podSecurityContext`` says it."""
    return copy.deepcopy(_load("values.yaml")["podSecurityContext"])


def container_security_context() -> dict[str, Any]:
    """The chart's default ``containerSecurityContext`` (restricted, read-only root filesystem)."""
    return copy.deepcopy(_load("values.yaml")["containerSecurityContext"])
