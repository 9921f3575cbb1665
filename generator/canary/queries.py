"""The PromQL the analysis asks: each metric's bad and total predicts per track over a window, and
the pre-checks' series. Built from the series the server exports and the generated scrape job
(``generator/conventions.py``, which the generated rules use too), so the analysis reads exactly what the alerts read; a
metric's query can be replaced in platform.yaml (``analysis.metrics.<metric>.badQuery``)."""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from generator.config import AnalysisMetric, CanaryAnalysis, Monitoring
from generator.conventions import PREDICT, metrics_service_name
from generator.strategy import CANARY

#: The selector of one model's predicts on one track of one environment.
_SELECTOR = f'namespace="$namespace",model="$model",{CANARY.variant_label}="$track",{PREDICT}'
_REQUESTS = "inference_requests_total"
_LATENCY = "inference_request_duration_seconds"


def _increase(metric: str, selector: str) -> str:
    """How many requests a counter counted in the window (ending at the query's time), summed,
    without ``increase()``'s extrapolation to the window's edges: for a series that existed at
    the start, its value now minus its value then (``increase()`` where the counter was reset in
    between: a restarted container); for a series that appeared within the window, its whole
    value (a counter starts at 0, and the first request of a code or version creates its series
    at 1, which ``increase()`` alone would never count)."""
    series, before = f"{metric}{{{selector}}}", f"{metric}{{{selector}}} offset $window"
    grown = f"({series} - {before}) >= 0 or (increase({series}[$window]) and {before})"
    return f"((sum({grown}) or vector(0)) + (sum({series} unless {before}) or vector(0)))"


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the analysis tests it: its queries (templates), effect size and cap."""

    name: str
    meaning: str
    bad: str
    total: str
    max_increase: float
    cap: float

    def queries(self, namespace: str, model: str, track: str, window_seconds: int) -> tuple[str, str]:
        """The bad and total queries with their placeholders filled in."""
        values = {"namespace": namespace, "model": model, "track": track, "window": f"{window_seconds}s"}
        return Template(self.bad).substitute(values), Template(self.total).substitute(values)


def _spec(name: str, meaning: str, policy: AnalysisMetric, bad: str, total: str, cap: float) -> MetricSpec:
    return MetricSpec(
        name,
        meaning,
        policy.bad_query or bad,
        policy.total_query or total,
        policy.max_increase,
        policy.cap if policy.cap is not None else cap,
    )


def metric_specs(policy: CanaryAnalysis, objectives: Monitoring) -> list[MetricSpec]:
    """The metrics of a policy: the 5xx share of predicts, and the share slower than the latency
    objective (the p99 held to the objective: at most 1 - percentile of predicts slower)."""
    le = f'le="{float(objectives.latency_seconds)!r}"'  # as the recording rules write the bound
    errors = _spec(
        "error_ratio",
        "5xx share of predicts",
        policy.metrics.error_ratio,
        _increase(_REQUESTS, f'{_SELECTOR},code=~"5.."'),
        _increase(_REQUESTS, _SELECTOR),
        round(1 - objectives.availability, 12),
    )
    slow_total = _increase(f"{_LATENCY}_count", _SELECTOR)
    latency = _spec(
        "latency_p99",
        f"share of predicts slower than {objectives.latency_seconds:g}s",
        policy.metrics.latency_p99,
        f"{slow_total} - {_increase(f'{_LATENCY}_bucket', f'{_SELECTOR},{le}')}",
        slow_total,
        round(1 - objectives.latency_percentile, 12),
    )
    return [errors, latency]


def targets_up(namespace: str, model: str) -> str:
    """Every scraped server pod of the model in the namespace: 1 up, 0 down."""
    return f'up{{namespace="{namespace}",job="{metrics_service_name(model)}"}}'


def scrape_age(namespace: str, model: str) -> str:
    """Seconds since each server pod's last scrape."""
    return f"time() - timestamp({targets_up(namespace, model)})"


def digests(namespace: str, model: str, track: str) -> str:
    """The model digest each pod of a track serves now (its live workers' 1s)."""
    selector = f'namespace="{namespace}",model="{model}",{CANARY.variant_label}="{track}"'
    return f"max by (instance, digest) (inference_model_digest_info{{{selector}}}) == 1"
