"""The PromQL the analysis asks: each metric's bad and total predicts per track over a window, and
the pre-checks' series. Built from the series the server exports and the generated scrape job
(``generator/conventions.py``, which the generated rules use too), so the analysis reads exactly what the alerts read; a
metric's query can be replaced in platform.yaml (``analysis.metrics.<metric>.badQuery``)."""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from generator.config import CanaryAnalysis, Monitoring
from generator.conventions import PREDICT, metrics_service_name
from generator.strategy import CANARY

#: The selector of one model's predicts on one track of one environment.
_SELECTOR = f'namespace="$namespace",model="$model",{CANARY.variant_label}="$track",{PREDICT}'
_REQUESTS = "inference_requests_total"
_LATENCY = "inference_request_duration_seconds"


def _increase(metric: str, selector: str, by: str = "") -> str:
    """How many requests a counter counted in the window (ending at the query's time), summed
    (``by`` labels kept), without ``increase()``'s extrapolation to the window's edges: for a
    series that existed at the start, its value now minus its value then (``increase()`` where
    the counter was reset in between: a restarted container); for a series that appeared within
    the window, its whole value (a counter starts at 0, and the first request of a code or
    version creates its series at 1, which ``increase()`` alone would never count)."""
    series, before = f"{metric}{{{selector}}}", f"{metric}{{{selector}}} offset $window"
    grown = f"(({series} - {before}) >= 0 or (increase({series}[$window]) and {before}))"
    summed = f"sum{f' by ({by})' if by else ''} ({grown} or ({series} unless {before}))"
    return summed if by else f"({summed} or vector(0))"


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the analysis tests it: its queries (templates), the effect size of its
    comparison with stable and its cap (None: that test is not made)."""

    name: str
    meaning: str
    bad: str
    total: str
    max_increase: float | None
    cap: float | None
    #: The bad predicts are those slower than stable's p99 (``$le``, found per look).
    above_stable_p99: bool = False

    def queries(self, namespace: str, model: str, track: str, window_seconds: int, le: str = "") -> tuple[str, str]:
        """The bad and total queries with their placeholders filled in."""
        values = {"namespace": namespace, "model": model, "track": track, "window": f"{window_seconds}s", "le": le}
        return Template(self.bad).substitute(values), Template(self.total).substitute(values)


def _slower_than(le: str) -> str:
    """Predicts slower than a bucket bound: all of them minus those within it."""
    return f"{_increase(f'{_LATENCY}_count', _SELECTOR)} - {_increase(f'{_LATENCY}_bucket', f'{_SELECTOR},le={le}')}"


def metric_specs(policy: CanaryAnalysis, objectives: Monitoring) -> list[MetricSpec]:
    """The metrics of a policy: the 5xx share of predicts (compared with stable, capped by the
    availability objective); and the p99 latency, compared with stable (the share of predicts
    slower than stable's p99 bucket, about 1 - percentile on stable by definition) and capped by
    the latency objective (the share slower than it at most 1 - percentile: the p99 within it).
    A policy's own queries make a metric one row with both tests."""
    errors, latency = policy.metrics.error_ratio, policy.metrics.latency_p99
    tail = round(1 - objectives.latency_percentile, 12)
    specs = [
        MetricSpec(
            "error_ratio",
            "answered with a 5xx (REST and gRPC)",
            errors.bad_query or _increase(_REQUESTS, f'{_SELECTOR},code=~"5.."'),
            errors.total_query or _increase(_REQUESTS, _SELECTOR),
            errors.max_increase,
            errors.cap if errors.cap is not None else round(1 - objectives.availability, 12),
        )
    ]
    if latency.bad_query:
        return [
            *specs,
            MetricSpec(
                "latency_p99",
                "the policy's query",
                latency.bad_query,
                latency.total_query,
                latency.max_increase,
                latency.cap if latency.cap is not None else tail,
            ),
        ]
    total = _increase(f"{_LATENCY}_count", _SELECTOR)
    bound = f'"{float(objectives.latency_seconds)!r}"'  # as the recording rules write the bound
    return [
        *specs,
        MetricSpec(
            "latency_p99",
            "slower than stable's p99",
            _slower_than('"$le"'),
            total,
            latency.max_increase,
            None,
            above_stable_p99=True,
        ),
        MetricSpec(
            "latency_p99_cap",
            f"slower than the {objectives.latency_seconds:g}s objective",
            _slower_than(bound),
            total,
            None,
            latency.cap if latency.cap is not None else tail,
        ),
    ]


def latency_buckets(namespace: str, model: str, track: str, window_seconds: int) -> str:
    """A track's predicts in the window per latency bucket (cumulative, by ``le``)."""
    query = _increase(f"{_LATENCY}_bucket", _SELECTOR, by="le")
    return Template(query).substitute(namespace=namespace, model=model, track=track, window=f"{window_seconds}s")


def percentile_bound(buckets: list[tuple[str, float]], percentile: float) -> str:
    """The smallest bucket bound (``le``) that holds ``percentile`` of the predicts ("+Inf" when
    none is counted: nothing is slower than that)."""
    ordered = sorted(buckets, key=lambda item: float(item[0]))
    total = ordered[-1][1] if ordered else 0.0
    return next((le for le, count in ordered if total and count >= percentile * total), "+Inf")


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
