"""Monitoring as code for one model's server: a ServiceMonitor, a PrometheusRule (recording
rules, SLO burn-rate alerts and operational alerts) and a Grafana dashboard in a ConfigMap.

Recorded, for predict requests: the 5xx ratio and the slow-request ratio (slower than the
latency objective) by namespace and model over each of ``WINDOWS``, and the 5xx ratio by
namespace, model, slot and track over ``VARIANT_WINDOW`` (what the canary alert and the
dashboard's per-variant panel read). Every ratio is 0, not absent, for a healthy or idle
server: the numerator falls back to ``0 *`` the denominator when no 5xx (or slow) series exists,
and the ratio to 0 when there was no traffic.

Expressions name metrics the server exports (``services/inference/metrics.py``) plus, for
pods that cannot answer a scrape, ``up`` of the ServiceMonitor's job and kube-state-metrics'
Deployment series. Aggregations keep ``namespace``, so the same rules deployed into several
environments produce identical alerts per environment, which Alertmanager merges. Tests:
``tests/monitoring`` (``promtool test rules`` on every overlay's rules, the dashboard JSON, and a
real Prometheus scraping a real server).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import cdk8s
from cdk8s_plus_33 import k8s
from constructs import Construct

from generator.config import Monitoring
from generator.conventions import PREDICT, metrics_service_name
from generator.strategy import ALL_VARIANTS, CANARY, STRATEGIES
from generator.synthesis.chart import chart_name
from generator.synthesis.common import labels
from generator.synthesis.delivery import SERVICE_ONLY
from generator.synthesis.inference import InferenceService, InferenceServiceProps

WINDOWS = ("5m", "30m", "1h", "6h")
#: The window of the per-slot/track 5xx ratio (canary alert, dashboard).
VARIANT_WINDOW = "10m"
BY = "namespace, model"
BY_VARIANT = "namespace, model, slot, track"
ERROR_RATIO = "inference:request_error_ratio:rate{}"
SLOW_RATIO = "inference:request_slow_ratio:rate{}"
VARIANT_ERROR_RATIO = "inference_variant:request_error_ratio:rate{}"
#: (long window, short window, burn-rate factor, for, severity): the SRE workbook's multi-window pairs.
BURN_ALERTS = (("1h", "5m", 14.4, "2m", "critical"), ("6h", "30m", 6, "15m", "warning"))
#: How long a version that failed to load keeps its alert after the last failure.
LOAD_FAILURE_WINDOW = "15m"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
#: The chart's name of the container and Service port that serves /metrics alone.
METRICS_PORT_NAME = "metrics"
#: The page of the repository that holds the alerts' runbooks (one heading per alert).
RUNBOOK_PAGE = "docs/operating.md"


@dataclass(frozen=True)
class MonitoringProps:
    """One model's server, the objectives it is held to and where its runbooks are published."""

    #: The model's server as platform.yaml defines it.
    server: InferenceServiceProps
    objectives: Monitoring
    runbooks_url: str


def runbooks_url(repo_url: str, revision: str) -> str:
    """The browsable runbook page of the repository Argo CD reads
    (``<repo>/blob/<revision>/docs/operating.md``, the form GitHub, GitLab and Gitea serve), from
    its clone URL (https, ssh:// or scp-like)."""
    if "://" not in repo_url:  # scp-like: git@host:org/repo.git
        user_host, _, path = repo_url.partition(":")
        repo_url = f"ssh://{user_host}/{path}"
    parts = urlsplit(repo_url)
    # An ssh URL's port is not the web server's; an https one's is. Credentials never go in a link.
    host = parts.netloc.rsplit("@", 1)[-1] if parts.scheme == "https" else parts.hostname
    return f"https://{host}/{parts.path.strip('/').removesuffix('.git')}/blob/{revision}/{RUNBOOK_PAGE}"


def runbook_anchor(alert: str) -> str:
    """The runbook heading (GitHub anchor) that explains an alert; the 1h/6h pairs share one."""
    return re.sub(r"(1h|6h)$", "", alert).lower()


def server_deployments(model: str) -> str:
    """A regex of every server Deployment of a model: the base's and each slot's or track's."""
    variants = sorted(set(ALL_VARIANTS))
    return f"{model}-server(-({'|'.join(variants)}))?"


def _rate_sum(metric: str, selector: str, window: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{window}]))"


def _ratio(part: str, whole: str) -> str:
    """``part / whole`` that is 0, never absent or NaN, while ``whole`` has a series: a healthy
    server has no 5xx series to divide, an idle one has no traffic."""
    return f"(\n  {part}\n  or\n  0 * {whole}\n)\n/\n({whole} > 0)\nor\n0 * {whole}"


def recording_rules(model: str, objectives: Monitoring) -> list[dict]:
    """Predict 5xx and slow-request ratios per window by namespace and model, and the 5xx ratio
    per slot/track; each is 0 for a healthy or idle server."""
    sel = f'model="{model}",{PREDICT}'
    le = f'le="{float(objectives.latency_seconds)!r}"'  # as Prometheus clients write bounds: 0.25, 1.0
    rules = []
    for window in WINDOWS:
        requests = _rate_sum("inference_requests_total", sel, window, BY)
        errors = _rate_sum("inference_requests_total", f'{sel},code=~"5.."', window, BY)
        rules.append({"record": ERROR_RATIO.format(window), "expr": _ratio(errors, requests)})
    for window in WINDOWS:
        total = _rate_sum("inference_request_duration_seconds_count", sel, window, BY)
        fast = _rate_sum("inference_request_duration_seconds_bucket", f"{sel},{le}", window, BY)
        rules.append({"record": SLOW_RATIO.format(window), "expr": _ratio(f"{total}\n  -\n  {fast}", total)})
    requests = _rate_sum("inference_requests_total", sel, VARIANT_WINDOW, BY_VARIANT)
    errors = _rate_sum("inference_requests_total", f'{sel},code=~"5.."', VARIANT_WINDOW, BY_VARIANT)
    rules.append({"record": VARIANT_ERROR_RATIO.format(VARIANT_WINDOW), "expr": _ratio(errors, requests)})
    return rules


def _annotations(alert: str, runbooks: str, summary: str, description: str) -> dict:
    return {"summary": summary, "description": description, "runbook_url": f"{runbooks}#{runbook_anchor(alert)}"}


def _burn_alert(
    name: str, ratio: str, threshold: float, windows: tuple[str, str, str, str, str], annotations: dict
) -> dict:
    """A multi-window burn-rate alert: the ratio over the long and the short window both above
    ``threshold`` (``windows``: model, long, short, for, severity)."""
    model, long, short, wait, severity = windows
    return {
        "alert": name,
        "expr": f'{ratio.format(long)}{{model="{model}"}} > {threshold:g}\n'
        f'and\n{ratio.format(short)}{{model="{model}"}} > {threshold:g}',
        "for": wait,
        "labels": {"severity": severity},
        "annotations": annotations,
    }


# One literal list of alerts, each beside its runbook text: longer than 60 lines on purpose.
def alert_rules(model: str, objectives: Monitoring, runbooks: str) -> list[dict]:
    """The alerts; each links the runbook section that says what to do (``runbook_url``)."""
    error_budget = round(1 - objectives.availability, 6)
    latency_budget = round(1 - objectives.latency_percentile, 6)
    alerts = []
    for long, short, factor, wait, severity in BURN_ALERTS:
        windows = (model, long, short, wait, severity)
        name = f"InferenceErrorBudgetBurn{long}"
        alerts.append(
            _burn_alert(
                name,
                ERROR_RATIO,
                round(factor * error_budget, 6),
                windows,
                _annotations(
                    name,
                    runbooks,
                    f"{model}: 5xx ratio burns the {objectives.availability:.4g} availability budget "
                    f"{factor:g}x too fast over {long}",
                    "{{ $labels.namespace }}: {{ $value | humanizePercentage }} of predict requests "
                    f"failed over the last {long}.",
                ),
            )
        )
        name = f"InferenceLatencyBudgetBurn{long}"
        alerts.append(
            _burn_alert(
                name,
                SLOW_RATIO,
                round(factor * latency_budget, 6),
                windows,
                _annotations(
                    name,
                    runbooks,
                    f"{model}: more than {latency_budget:.2%} x {factor:g} of predict requests are slower "
                    f"than {objectives.latency_seconds:g}s (p{objectives.latency_percentile * 100:g} objective)",
                    "{{ $labels.namespace }}: {{ $value | humanizePercentage }} of predict requests "
                    f"missed the latency objective over the last {long}.",
                ),
            )
        )
    alerts += [
        {
            "alert": "InferenceNoModelLoaded",
            "expr": _no_model_loaded(model),
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": _annotations(
                "InferenceNoModelLoaded",
                runbooks,
                f"{model}: no server pod serves a model",
                "{{ $labels.namespace }}: no pod has a model loaded: they report not ready, do not answer "
                "their scrape (crash loop) or do not run at all.",
            ),
        },
        {
            "alert": "InferenceModelLoadFailures",
            "expr": _load_failures(model),
            "labels": {"severity": "warning"},
            "annotations": _annotations(
                "InferenceModelLoadFailures",
                runbooks,
                f"{model}: version {{{{ $labels.version }}}} failed to load",
                "{{ $labels.namespace }}: version {{ $labels.version }} failed to load in the last "
                f"{LOAD_FAILURE_WINDOW}; pods that served a version keep serving it, the new one is broken "
                "or does not fit the pod's memory.",
            ),
        },
        {
            "alert": "InferenceCanaryWorseThanStable",
            "expr": _canary_worse(model, error_budget),
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": _annotations(
                "InferenceCanaryWorseThanStable",
                runbooks,
                f"{model}: the canary fails more often than stable",
                "{{ $labels.namespace }}: canary 5xx ratio is {{ $value | humanizePercentage }}, "
                "more than twice stable's plus the error budget.",
            ),
        },
    ]
    return alerts


def _no_model_loaded(model: str) -> str:
    """No pod serves: pods answer but report not ready, or every scraped pod is down (crash loop:
    no ``inference_model_ready`` series at all), or kube-state-metrics says the model's
    Deployments want pods and have none available (no pod runs, so nothing is scraped)."""
    deployments = f'deployment=~"{server_deployments(model)}"'
    with_model = f'"model", "{model}", "", ""'
    return (
        f'max by ({BY}) (inference_model_ready{{model="{model}"}}) == 0\n'
        f"or\n"
        f'label_replace(max by (namespace) (up{{job="{metrics_service_name(model)}"}}) == 0, {with_model})\n'
        f"or\n"
        f"label_replace(\n"
        f"  sum by (namespace) (kube_deployment_status_replicas_available{{{deployments}}}) == 0\n"
        f"  and\n"
        f"  sum by (namespace) (kube_deployment_spec_replicas{{{deployments}}}) > 0,\n"
        f"  {with_model}\n"
        f")"
    )


def _load_failures(model: str) -> str:
    """A version failed to load within the window: its failure counter rose (the server retries a
    failed version with backoff), or its series appeared already above 0 (a first failure that no
    scrape saw at 0)."""
    counter = f'inference_model_load_failures_total{{model="{model}"}}'
    return (
        f"sum by ({BY}, version) (increase({counter}[{LOAD_FAILURE_WINDOW}])) > 0\n"
        f"or\n"
        f"sum by ({BY}, version) ({counter} unless {counter} offset {LOAD_FAILURE_WINDOW}) > 0"
    )


def _canary_worse(model: str, error_budget: float) -> str:
    """The canary's 5xx ratio is more than twice stable's plus the budget; stable counts as 0
    when it has no series (no stable pod), so a failing canary is never compared with nothing."""
    ratio = VARIANT_ERROR_RATIO.format(VARIANT_WINDOW)
    canary, stable = (
        f'{ratio}{{model="{model}",{CANARY.variant_label}="{track}"}}' for track in (CANARY.canary, CANARY.stable)
    )
    return f"{canary}\n> on ({BY})\n2 * ({stable} or on ({BY}) 0 * {canary})\n+ {error_budget:g}"


# One literal list of panels, in the order the dashboard shows them: longer than 60 lines on purpose.
def dashboard(model: str, objectives: Monitoring) -> dict:
    """A Grafana dashboard: traffic, pods, errors, latency against the objective, versions, batches."""
    sel = f'namespace="$namespace",model="{model}"'
    datasource = {"type": "prometheus", "uid": "${datasource}"}

    def panel(index: int, title: str, unit: str, *targets: tuple[str, str]) -> dict:
        return {
            "id": index + 1,
            "type": "timeseries",
            "title": title,
            "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
            "datasource": datasource,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [
                {"refId": chr(65 + i), "datasource": datasource, "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(targets)
            ],
        }

    def quantiles(metric: str, selector: str, *qs: float) -> list[tuple[str, str]]:
        return [
            (f"histogram_quantile({q}, sum by (le) (rate({metric}{{{selector}}}[5m])))", f"p{round(q * 100)}")
            for q in qs
        ]

    budget = 1 - objectives.availability
    panels = [
        panel(
            0,
            "Requests per second by status code",
            "reqps",
            (f"sum by (code) (rate(inference_requests_total{{{sel}}}[5m]))", "{{code}}"),
        ),
        panel(
            1,
            "Server pods answering scrapes and ready, by slot/track",
            "short",
            (
                f'sum by (slot, track) (up{{namespace="$namespace",job="{metrics_service_name(model)}"}})',
                "up {{slot}}{{track}}",
            ),
            (f"sum by (slot, track) (inference_model_ready{{{sel}}})", "ready {{slot}}{{track}}"),
        ),
        panel(
            2,
            f"Predict 5xx ratio (objective: {budget:.2%} budget)",
            "percentunit",
            (f"{ERROR_RATIO.format('5m')}{{{sel}}}", "5m"),
            (f"{ERROR_RATIO.format('1h')}{{{sel}}}", "1h"),
        ),
        panel(
            3,
            f"Predict 5xx ratio by slot/track ({VARIANT_WINDOW})",
            "percentunit",
            (f"{VARIANT_ERROR_RATIO.format(VARIANT_WINDOW)}{{{sel}}}", "{{slot}}{{track}}"),
        ),
        panel(
            4,
            f"Predict latency (objective: p{objectives.latency_percentile * 100:g} < {objectives.latency_seconds:g}s)",
            "s",
            *quantiles("inference_request_duration_seconds_bucket", f"{sel},{PREDICT}", 0.5, 0.9, 0.99),
        ),
        panel(
            5,
            f"Predict requests slower than {objectives.latency_seconds:g}s "
            f"(budget: {1 - objectives.latency_percentile:.2%})",
            "percentunit",
            (f"{SLOW_RATIO.format('5m')}{{{sel}}}", "5m"),
            (f"{SLOW_RATIO.format('1h')}{{{sel}}}", "1h"),
        ),
        panel(
            6,
            "Served model version by slot/track",
            "none",
            (f"max by (slot, track) (inference_model_loaded_version{{{sel}}})", "{{slot}}{{track}}"),
        ),
        panel(
            7,
            "Model loads and load failures (1h)",
            "short",
            (f"sum by (version) (increase(inference_model_loads_total{{{sel}}}[1h]))", "loaded v{{version}}"),
            (f"sum by (version) (increase(inference_model_load_failures_total{{{sel}}}[1h]))", "failed v{{version}}"),
        ),
        panel(
            8,
            "Batch size (instances per predict)",
            "short",
            *quantiles("inference_batch_size_bucket", sel, 0.5, 0.99),
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
                    "datasource": datasource,
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
        own = labels(
            name=chart_name(), instance=props.server.model.name, component="monitoring", part_of=props.server.part_of
        )
        rule_labels = {**own, **dict(props.objectives.rule_labels)}
        self._metrics_service(props)
        self._operator_objects(props, rule_labels)
        self._dashboard(props, own)

    def _metrics_service(self, props: MonitoringProps) -> None:
        model = props.server.model.name
        # A headless Service over every server pod of the model, whatever its slot or track, so
        # each pod is scraped exactly once (the routing Services select subsets of them).
        metrics = InferenceService(
            self,
            "metrics-service",
            replace(
                props.server,
                overrides={
                    "fullnameOverride": metrics_service_name(model),
                    **SERVICE_ONLY,
                    # The one Service with the metrics port: what the ServiceMonitor scrapes.
                    "service": {"metricsPort": props.server.serving.metrics_port},
                },
            ),
        )
        for obj in metrics.helm.api_objects:
            obj.metadata.add_label("app.kubernetes.io/component", "metrics")
            obj.add_json_patch(cdk8s.JsonPatch.add("/spec/clusterIP", "None"))

    def _operator_objects(self, props: MonitoringProps, rule_labels: dict[str, str]) -> None:
        """The ServiceMonitor and PrometheusRule (custom resources: no typed class, see the package
        docstring), both named after the model's server."""
        model = props.server.model.name
        for kind, spec in (("ServiceMonitor", _monitor_spec(model)), ("PrometheusRule", _rules_spec(props))):
            obj = cdk8s.ApiObject(
                self,
                kind,
                api_version="monitoring.coreos.com/v1",
                kind=kind,
                metadata=cdk8s.ApiObjectMetadata(name=f"{model}-server", labels=rule_labels),
            )
            obj.add_json_patch(cdk8s.JsonPatch.add("/spec", spec))

    def _dashboard(self, props: MonitoringProps, own: dict[str, str]) -> None:
        model = props.server.model.name
        k8s.KubeConfigMap(
            self,
            "dashboard",
            metadata=k8s.ObjectMeta(name=f"{model}-dashboard", labels={**own, **DASHBOARD_LABEL}),
            data={f"{model}.json": json.dumps(dashboard(model, props.objectives), indent=1, sort_keys=True) + "\n"},
        )


def _monitor_spec(model: str) -> dict:
    """What Prometheus scrapes: the model's metrics Service, every server pod once."""
    return {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": chart_name(),
                "app.kubernetes.io/instance": model,
                "app.kubernetes.io/component": "metrics",
            }
        },
        # The chart's port of /metrics alone (the serving ports answer it 404).
        "endpoints": [{"port": METRICS_PORT_NAME, "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}],
        # Series carry the pod's slot or track, so dashboards and the canary alert can split by it.
        "podTargetLabels": [s.variant_label for s in STRATEGIES.values() if s.variant_label],
    }


def _rules_spec(props: MonitoringProps) -> dict:
    """The recording rules and the alerts of one model."""
    model = props.server.model.name
    return {
        "groups": [
            {"name": f"{model}.recording", "interval": "30s", "rules": recording_rules(model, props.objectives)},
            {"name": f"{model}.alerts", "rules": alert_rules(model, props.objectives, props.runbooks_url)},
        ]
    }
