"""The insights as files: ``insights.json`` (versioned, with a JSON Schema beside this module),
``metrics.prom`` (Prometheus text, written with prometheus_client), ``deployments.csv`` and
``index.html`` (one self-contained page with inline SVG charts: ``report.py``).

Every file is a function of the history and the window alone: keys sorted, rows in a fixed order,
no time of writing, so the same history gives the same bytes. Each file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from generator.files import write_atomic
from generator.insights.failures import Failure
from generator.insights.history import TRAILERS, Deployment, History
from generator.insights.lineage import LineageRow, iso
from generator.insights.metrics import ALL, MIN_SAMPLES, OK, Window

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("insights.schema.json")
FILES = ("insights.json", "metrics.prom", "deployments.csv", "index.html")
CSV_COLUMNS = (
    "env",
    "commit",
    "time",
    "action",
    "changes",
    "carried",
    "failure",
    "restored_by",
    "restore_seconds",
    "subject",
)


def deployment_rows(history: History, window: Window, failures: dict[str, list[Failure]]) -> list[dict[str, Any]]:
    """One row per deployment in the window, with its failure (if any) and its trailers."""
    by_failed = {(f.failed.env, f.failed.commit.sha): f for fs in failures.values() for f in fs}
    rows = []
    for env, deployments in history.deployments.items():
        for d in deployments:
            if window.holds(d.time):
                rows.append(_row(d, by_failed.get((env, d.commit.sha))))
    return sorted(rows, key=lambda r: (r["time"], r["env"]))


def _row(d: Deployment, failure: Failure | None) -> dict[str, Any]:
    return {
        "env": d.env,
        "commit": d.commit.sha,
        "time": iso(d.time),
        "action": d.action,
        "changes": d.after.changes_from(d.before),
        "carried": len(d.carried),
        "failure": failure.cause if failure else None,
        "restoredBy": failure.restored_by.commit.sha if failure else None,
        "restoreSeconds": failure.restore_seconds if failure else None,
        "subject": d.commit.subject,
        "trailers": {key: d.commit.trailer(key) for key in TRAILERS if d.commit.trailer(key)},
    }


def insights_document(
    history: History,
    window: Window,
    head: str,
    figures: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
    lineage: list[LineageRow],
) -> dict[str, Any]:
    """insights.json's content (``SCHEMA_PATH`` describes it)."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "head": head,
        "window": {"since": iso(window.since), "until": iso(window.until)},
        "minSamples": MIN_SAMPLES,
        "definitions": "generator/insights/README.md",
        "environments": {
            env: {"strategy": strategy.name, "figures": figures[env]} for env, strategy in history.environments.items()
        },
        "all": figures[ALL],
        "deployments": rows,
        "lineage": [row.as_json() for row in lineage],
    }


def json_bytes(document: dict[str, Any]) -> bytes:
    """The document as sorted, indented JSON ending in a newline."""
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


class _Figures(Collector):
    """Yields the figures: counts and ratios as gauges, durations as summaries (nearest-rank
    quantiles, count, sum); low cardinality (environment, quantile; the live model's version and
    digest per variant)."""

    def __init__(self, document: dict[str, Any]):
        self.document = document

    def collect(self) -> Iterator[Metric]:
        """The metric families of the document, environments in name order."""
        doc = self.document
        scopes = {**{env: e["figures"] for env, e in doc["environments"].items()}, ALL: doc["all"]}
        deployments = GaugeMetricFamily(
            "ml_gitops_deployments",
            "Deployments in the window (commits that changed the release state)",
            labels=["env"],
        )
        per_week = GaugeMetricFamily(
            "ml_gitops_deployments_per_week", "Deployments per week of the window", labels=["env"]
        )
        failures = GaugeMetricFamily(
            "ml_gitops_change_failures", "Failed deployments (canary catches apart)", labels=["env"]
        )
        ratio = GaugeMetricFamily(
            "ml_gitops_change_failure_ratio", "Failed deployments over deployments (enough data only)", labels=["env"]
        )
        caught = GaugeMetricFamily("ml_gitops_canary_catches", "Failures caught by the canary", labels=["env"])
        quantiles = {
            key: Metric(name, text, "summary")
            for key, name, text in (
                ("leadTime", "ml_gitops_lead_time_seconds", "Commit author time to its first deployment"),
                ("modelLeadTime", "ml_gitops_model_lead_time_seconds", "Model card created to first pin"),
                ("stageWait", "ml_gitops_stage_wait_seconds", "A model version's wait between environments"),
                ("timeToRestore", "ml_gitops_time_to_restore_seconds", "Failed deployment to restoring commit"),
            )
        }
        for env, f in sorted(scopes.items()):
            deployments.add_metric([env], f["deployments"]["count"])
            if f["deployments"]["perWeek"] is not None:
                per_week.add_metric([env], f["deployments"]["perWeek"])
            cfr = f["changeFailureRate"]
            failures.add_metric([env], cfr["numerator"])
            caught.add_metric([env], cfr["caughtByCanary"])
            if cfr["status"] == OK:
                ratio.add_metric([env], cfr["value"])
            for key, family in quantiles.items():
                figure = f[key]
                if figure["status"] == OK:  # quantiles only from enough samples; count and sum always
                    for name, value in sorted(figure["quantiles"].items()):
                        family.add_sample(family.name, {"env": env, "quantile": str(int(name[1:]) / 100)}, value)
                family.add_sample(f"{family.name}_count", {"env": env}, figure["samples"])
                family.add_sample(f"{family.name}_sum", {"env": env}, sum(v["seconds"] for v in figure["values"]))
        live = GaugeMetricFamily(
            "ml_gitops_live_model_info",
            "The model each environment's variant pins now (1)",
            labels=["env", "variant", "model", "version", "digest"],
        )
        for row in doc["lineage"]:
            if row["toCommit"] is None:
                live.add_metric(
                    [row["env"], row["variant"], row["model"], row["version"] or "", row["digest"] or ""], 1
                )
        yield from (deployments, per_week, failures, ratio, caught, *quantiles.values(), live)


def prometheus_bytes(document: dict[str, Any]) -> bytes:
    """metrics.prom: the figures in Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(document))
    return generate_latest(registry)


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """deployments.csv: one line per deployment in the window."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r["env"],
                r["commit"],
                r["time"],
                r["action"],
                "; ".join(r["changes"]),
                r["carried"],
                r["failure"] or "",
                r["restoredBy"] or "",
                "" if r["restoreSeconds"] is None else r["restoreSeconds"],
                r["subject"],
            ]
        )
    return out.getvalue().encode()


def write_all(out_dir: Path, document: dict[str, Any]) -> list[Path]:
    """Write the four files into ``out_dir`` (each atomically); the paths written."""
    from generator.insights import report  # matplotlib is imported for the report only (not by `lineage`)

    contents = {
        "insights.json": json_bytes(document),
        "metrics.prom": prometheus_bytes(document),
        "deployments.csv": csv_bytes(document["deployments"]),
        "index.html": report.html_bytes(document),
    }
    for name, data in contents.items():
        write_atomic(out_dir / name, data)
    return [out_dir / name for name in FILES]
