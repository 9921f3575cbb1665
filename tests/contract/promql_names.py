"""Find every PromQL expression in rendered monitoring objects and the metric names it queries,
with a real PromQL parser (imported as a top-level module: tests/contract has no __init__)."""

from __future__ import annotations

import json

import promql_parser


def monitoring_expressions(objects: list[dict]) -> list[tuple[str, str]]:
    """(where, expression) for every rule of every PrometheusRule and every dashboard target."""
    found = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "PrometheusRule":
            for group in obj["spec"]["groups"]:
                for rule in group["rules"]:
                    found.append((f"{name}: {rule.get('alert') or rule.get('record')}", rule["expr"]))
        elif obj["kind"] == "ConfigMap" and obj["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for key, text in obj["data"].items():
                for panel in json.loads(text)["panels"]:
                    for target in panel["targets"]:
                        found.append((f"{name}: {key}: {panel['title']}", target["expr"]))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (raises ValueError when it does not parse)."""
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names
