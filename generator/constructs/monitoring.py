"""Monitoring as code for one model's server: a ServiceMonitor, a PrometheusRule (SLO
burn-rate alerts plus operational ones) and a Grafana dashboard in a ConfigMap.

Every expression names only metrics the server exports (``services/inference/metrics.py``);
tests parse each one with a real PromQL parser and check the names against a running
server's ``/metrics``. Aggregations keep ``namespace``, so the same rules deployed into
several environments produce identical alerts per environment, which Alertmanager merges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cdk8s
from constructs import Construct

from generator.config import Image, Model, Monitoring, Serving
from generator.constructs.delivery import SERVICE_ONLY
from generator.constructs.inference import InferenceService, InferenceServiceProps

PREDICT = 'endpoint=~"predict|predict_version"'
WINDOWS = ("5m", "30m", "1h", "6h")
#: (long window, short window, burn-rate factor, for, severity): the SRE workbook's multi-window pairs.
BURN_ALERTS = (("1h", "5m", 14.4, "2m", "critical"), ("6h", "30m", 6, "15m", "warning"))
DASHBOARD_LABEL = {"grafana_dashboard": "1"}


@dataclass(frozen=True)
class MonitoringProps:
    """One model's server and the objectives it is held to."""

    model: Model
    image: Image
    serving: Serving
    part_of: str
    model_store_claim: str
    objectives: Monitoring


def recording_rules(model: str) -> list[dict]:
    """Error and slow-request ratios per window, by namespace, model and track/slot."""
    sel = f'model="{model}",{PREDICT}'
    rules = []
    for window in WINDOWS:
        rules.append(
            {
                "record": f"inference:request_error_ratio:rate{window}",
                "expr": f'sum by (namespace, model) (rate(inference_requests_total{{{sel},code=~"5.."}}[{window}]))\n'
                f"/\nsum by (namespace, model) (rate(inference_requests_total{{{sel}}}[{window}]))",
            }
        )
    return rules


def slow_ratio(model: str, window: str, objective: float) -> str:
    """Share of predict requests slower than the latency objective over ``window``.

    ``le`` is written as Prometheus clients write bucket bounds (``0.25``, ``1.0``)."""
    sel = f'model="{model}",{PREDICT}'
    return (
        f"1 - (\n  sum by (namespace, model) (rate(inference_request_duration_seconds_bucket"
        f'{{{sel},le="{float(objective)!r}"}}'
        f"[{window}]))\n  /\n  sum by (namespace, model) (rate(inference_request_duration_seconds_count{{{sel}}}"
        f"[{window}]))\n)"
    )


def alert_rules(model: str, objectives: Monitoring) -> list[dict]:
    """The alerts; each names what to do in its runbook annotation (README "Operating")."""
    error_budget = round(1 - objectives.availability, 6)
    latency_budget = round(1 - objectives.latency_percentile, 6)
    alerts = []
    for long, short, factor, wait, severity in BURN_ALERTS:
        threshold = round(factor * error_budget, 6)
        alerts.append(
            {
                "alert": f"InferenceErrorBudgetBurn{long}",
                "expr": f'inference:request_error_ratio:rate{long}{{model="{model}"}} > {threshold:g}\n'
                f'and\ninference:request_error_ratio:rate{short}{{model="{model}"}} > {threshold:g}',
                "for": wait,
                "labels": {"severity": severity},
                "annotations": {
                    "summary": f"{model}: 5xx ratio burns the {objectives.availability:.4g} availability budget "
                    f"{factor:g}x too fast over {long}",
                    "description": "{{ $labels.namespace }}: {{ $value | humanizePercentage }} of predict requests "
                    f"failed over the last {short}.",
                    "runbook": "README.md#operating: InferenceErrorBudgetBurn",
                },
            }
        )
        latency_threshold = round(factor * latency_budget, 6)
        alerts.append(
            {
                "alert": f"InferenceLatencyBudgetBurn{long}",
                "expr": f"({slow_ratio(model, long, objectives.latency_seconds)}) > {latency_threshold:g}\n"
                f"and\n({slow_ratio(model, short, objectives.latency_seconds)}) > {latency_threshold:g}",
                "for": wait,
                "labels": {"severity": severity},
                "annotations": {
                    "summary": f"{model}: more than {latency_budget:.2%} x {factor:g} of predict requests are slower "
                    f"than {objectives.latency_seconds:g}s (p{objectives.latency_percentile * 100:g} objective)",
                    "description": "{{ $labels.namespace }}: {{ $value | humanizePercentage }} of predict requests "
                    f"missed the latency objective over the last {short}.",
                    "runbook": "README.md#operating: InferenceLatencyBudgetBurn",
                },
            }
        )
    alerts += [
        {
            "alert": "InferenceNoModelLoaded",
            "expr": f'max by (namespace, model) (inference_model_ready{{model="{model}"}}) == 0',
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": f"{model}: no server pod has a model loaded",
                "description": "{{ $labels.namespace }}: every pod reports not ready; the Service has no endpoints.",
                "runbook": "README.md#operating: InferenceNoModelLoaded",
            },
        },
        {
            "alert": "InferenceModelLoadFailures",
            "expr": "sum by (namespace, model, version) "
            f'(increase(inference_model_load_failures_total{{model="{model}"}}[15m])) > 0',
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"{model}: version {{{{ $labels.version }}}} failed to load",
                "description": "{{ $labels.namespace }}: the previous version keeps serving; the new one is broken "
                "or does not fit the pod's memory.",
                "runbook": "README.md#operating: InferenceModelLoadFailures",
            },
        },
        {
            "alert": "InferenceCanaryWorseThanStable",
            "expr": _canary_worse(model, error_budget),
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"{model}: the canary fails more often than stable",
                "description": "{{ $labels.namespace }}: canary 5xx ratio is {{ $value | humanizePercentage }}, "
                "more than twice stable's (plus the error budget).",
                "runbook": "README.md#operating: InferenceCanaryWorseThanStable",
            },
        },
    ]
    return alerts


def _canary_worse(model: str, error_budget: float) -> str:
    def ratio(track: str) -> str:
        sel = f'model="{model}",{PREDICT},track="{track}"'
        return (
            f'(sum by (namespace, model) (rate(inference_requests_total{{{sel},code=~"5.."}}[10m]))\n'
            f" / sum by (namespace, model) (rate(inference_requests_total{{{sel}}}[10m])))"
        )

    return f"{ratio('canary')}\n> 2 * {ratio('stable')} + {error_budget:g}"


def dashboard(model: str, objectives: Monitoring) -> dict:
    """A Grafana dashboard: traffic, errors, latency against the objective, versions, batches."""
    sel = f'namespace="$namespace",model="{model}"'

    def panel(index: int, title: str, unit: str, *targets: tuple[str, str]) -> dict:
        return {
            "id": index + 1,
            "type": "timeseries",
            "title": title,
            "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [
                {"refId": chr(65 + i), "expr": expr, "legendFormat": legend} for i, (expr, legend) in enumerate(targets)
            ],
        }

    quantiles = [
        (
            f"histogram_quantile({q}, sum by (le) (rate(inference_request_duration_seconds_bucket"
            f"{{{sel},{PREDICT}}}[5m])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]
    panels = [
        panel(
            0,
            "Requests per second by status code",
            "reqps",
            (f"sum by (code) (rate(inference_requests_total{{{sel}}}[5m]))", "{{code}}"),
        ),
        panel(
            1,
            f"Predict 5xx ratio (objective: {(1 - objectives.availability):.2%} budget)",
            "percentunit",
            (f"inference:request_error_ratio:rate5m{{{sel}}}", "5m"),
            (f"inference:request_error_ratio:rate1h{{{sel}}}", "1h"),
        ),
        panel(
            2,
            f"Predict latency (objective: p{objectives.latency_percentile * 100:g} < {objectives.latency_seconds:g}s)",
            "s",
            *quantiles,
        ),
        panel(
            3,
            "Served model version by slot/track",
            "none",
            (f"max by (slot, track) (inference_model_loaded_version{{{sel}}})", "{{slot}}{{track}}"),
        ),
        panel(
            4,
            "Batch size (instances per predict)",
            "none",
            *[
                (
                    f"histogram_quantile({q}, sum by (le) (rate(inference_batch_size_bucket{{{sel}}}[5m])))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.99)
            ],
        ),
        panel(
            5,
            "Model loads and load failures",
            "none",
            (f"sum by (version) (increase(inference_model_loads_total{{{sel}}}[1h]))", "loaded v{{version}}"),
            (f"sum by (version) (increase(inference_model_load_failures_total{{{sel}}}[1h]))", "failed v{{version}}"),
        ),
    ]
    return {
        "uid": f"inference-{model}",
        "title": f"Inference: {model}",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["inference", model],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
                {
                    "name": "namespace",
                    "type": "query",
                    "label": "Environment",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": f'label_values(inference_requests_total{{model="{model}"}}, namespace)',
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


class ServerMonitoring(Construct):
    """Metrics Service, ServiceMonitor, PrometheusRule and dashboard ConfigMap of one model."""

    def __init__(self, scope: Construct, id: str, props: MonitoringProps):
        super().__init__(scope, id)
        model = props.model.name
        server = f"{model}-server"
        # A headless Service over every server pod of the model, whatever its slot or track, so
        # each pod is scraped exactly once (the routing Services select subsets of them).
        metrics = InferenceService(
            self,
            "metrics-service",
            InferenceServiceProps(
                model=props.model,
                image=props.image,
                serving=props.serving,
                part_of=props.part_of,
                model_store_claim=props.model_store_claim,
                overrides={"fullnameOverride": f"{server}-metrics", **SERVICE_ONLY},
            ),
        )
        for obj in metrics.helm.api_objects:
            obj.metadata.add_label("app.kubernetes.io/component", "metrics")
            obj.add_json_patch(cdk8s.JsonPatch.add("/spec/clusterIP", "None"))
        labels = {
            "app.kubernetes.io/name": "inference-service",
            "app.kubernetes.io/instance": model,
            "app.kubernetes.io/component": "monitoring",
            "app.kubernetes.io/part-of": props.part_of,
            "app.kubernetes.io/managed-by": "cdk8s",
        }
        rule_labels = {**labels, **dict(props.objectives.rule_labels)}
        monitor = cdk8s.ApiObject(
            self,
            "service-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=cdk8s.ApiObjectMetadata(name=server, labels=rule_labels),
        )
        monitor.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec",
                {
                    "selector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "inference-service",
                            "app.kubernetes.io/instance": model,
                            "app.kubernetes.io/component": "metrics",
                        }
                    },
                    "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}],
                    # Series carry the pod's slot or track, so dashboards and the canary alert can split by it.
                    "podTargetLabels": ["slot", "track"],
                },
            )
        )
        rule = cdk8s.ApiObject(
            self,
            "rule",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=cdk8s.ApiObjectMetadata(name=server, labels=rule_labels),
        )
        rule.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec",
                {
                    "groups": [
                        {"name": f"{model}.recording", "interval": "30s", "rules": recording_rules(model)},
                        {"name": f"{model}.alerts", "rules": alert_rules(model, props.objectives)},
                    ]
                },
            )
        )
        cdk8s.ApiObject(
            self,
            "dashboard",
            api_version="v1",
            kind="ConfigMap",
            metadata=cdk8s.ApiObjectMetadata(name=f"{model}-dashboard", labels={**labels, **DASHBOARD_LABEL}),
        ).add_json_patch(
            cdk8s.JsonPatch.add(
                "/data",
                {f"{model}.json": json.dumps(dashboard(model, props.objectives), indent=1, sort_keys=True) + "\n"},
            )
        )
