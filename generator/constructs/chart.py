"""The facts of charts/inference-service that other constructs share: where it is, its name, and
its default values, which hold the repository's one definition of a restricted pod security
context (the chart is usable on its own, so its defaults must be the secure ones)."""

from __future__ import annotations

from typing import Any

import yaml

from generator.paths import REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "inference-service"
#: The chart's name: its pods' ``app.kubernetes.io/name``, which other objects select by.
CHART_NAME: str = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["name"]
#: The chart's default values (values.yaml).
CHART_VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
#: Pod Security "restricted" (plus a read-only root filesystem), as the chart's defaults say it.
POD_SECURITY_CONTEXT: dict[str, Any] = CHART_VALUES["podSecurityContext"]
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = CHART_VALUES["containerSecurityContext"]
