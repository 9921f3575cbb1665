"""Every PromQL expression the generator emits parses with a real PromQL parser, and the
alerts cover what the monitoring issue asks for (the metric names are checked against a
running server in test_manifest_contract; what the rules do is tested in tests/monitoring)."""

from __future__ import annotations

import re

import pytest
import yaml
from promql_names import metric_names, monitoring_expressions

from generator.paths import REPO_ROOT
from generator.synthesis.monitoring import RUNBOOK_PAGE
from generator.tools import render_overlay


@pytest.fixture(scope="module")
def prod() -> list[dict]:
    return [d for d in yaml.safe_load_all(render_overlay(REPO_ROOT / "overlays" / "prod")) if d]


def test_prod_renders_servicemonitor_rule_and_dashboard(prod):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in prod}
    assert {
        ("ServiceMonitor", "mnist-server"),
        ("PrometheusRule", "mnist-server"),
        ("ConfigMap", "mnist-dashboard"),
    } <= kinds


def test_every_expression_parses_and_names_metrics(prod):
    expressions = monitoring_expressions(prod)
    assert len(expressions) >= 15
    for where, expr in expressions:
        assert metric_names(expr), where


def test_a_broken_expression_is_caught():
    with pytest.raises(ValueError):
        metric_names("sum(rate(inference_requests_total[5m])")


def test_rules_select_every_predict_handler_the_server_counts(prod):
    from services.inference.metrics import PREDICT_ENDPOINTS

    (rule,) = [o for o in prod if o["kind"] == "PrometheusRule"]
    selectors = {
        re.search(r'handler=~"([^"]+)"', r["expr"])[1]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if "handler" in r["expr"]
    }
    assert selectors == {"|".join(PREDICT_ENDPOINTS)}


def test_alerts_cover_the_failure_modes(prod):
    (rule,) = [o for o in prod if o["kind"] == "PrometheusRule"]
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {
        "InferenceErrorBudgetBurn1h",
        "InferenceErrorBudgetBurn6h",
        "InferenceLatencyBudgetBurn1h",
        "InferenceLatencyBudgetBurn6h",
        "InferenceNoModelLoaded",
        "InferenceModelLoadFailures",
        "InferenceCanaryWorseThanStable",
    } <= set(alerts)
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in ("critical", "warning"), name
        assert alert["annotations"]["runbook_url"].split("#")[0].endswith(f"/{RUNBOOK_PAGE}"), name
    # Multi-window burn rate: each budget alert needs both its long and short window to burn.
    assert "rate1h" in alerts["InferenceErrorBudgetBurn1h"]["expr"]
    assert "rate5m" in alerts["InferenceErrorBudgetBurn1h"]["expr"]
    runbooks = (REPO_ROOT / RUNBOOK_PAGE).read_text()
    for name in alerts:
        assert re.sub(r"(1h|6h)$", "", name) in runbooks, f"{RUNBOOK_PAGE} does not explain {name}"
