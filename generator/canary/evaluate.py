"""One evaluation: the pre-checks and every metric of every model, asked of Prometheus for the
window of the current look."""

from __future__ import annotations

from generator.canary import checks, queries
from generator.canary.decision import Window
from generator.canary.prometheus import Prometheus
from generator.canary.report import Evidence
from generator.canary.stats import Result, counts, judge, look_alpha
from generator.config import CanaryAnalysis, Monitoring
from generator.release.overlay import Overlay
from generator.strategy import CANARY


def _stable_p99(prom: Prometheus, namespace: str, model: str, window: Window, objectives: Monitoring) -> str:
    """The bucket bound of stable's p99 (``latencyObjectivePercentile``) in the window."""
    query = queries.latency_buckets(namespace, model, CANARY.stable, window.seconds)
    buckets = [(labels.get("le", "+Inf"), value) for labels, value in prom.vector(query, window.end)]
    return queries.percentile_bound(buckets, objectives.latency_percentile)


def _results(
    prom: Prometheus,
    overlay: Overlay,
    model: str,
    specs: list[queries.MetricSpec],
    window: Window,
    policy: CanaryAnalysis,
    objectives: Monitoring,
) -> tuple[list[tuple[str, Result]], list[str], dict[str, int]]:
    """Each metric's test for one model, what each counts as bad, and each track's predicts (the
    first metric's totals)."""
    namespace, alpha = overlay.env.namespace, look_alpha(policy.alpha, window.look)
    results: list[tuple[str, Result]] = []
    notes: list[str] = []
    predicts: dict[str, int] = {}
    stable_p99 = _stable_p99(prom, namespace, model, window, objectives)
    for spec in specs:
        measured = {}
        for track in CANARY.variants:
            bad, total = spec.queries(namespace, model, track, window.seconds, stable_p99)
            measured[track] = counts(prom.scalar_sum(bad, window.end), prom.scalar_sum(total, window.end))
        predicts = predicts or {track: c.total for track, c in measured.items()}
        result = judge(
            measured[CANARY.canary],
            measured[CANARY.stable],
            max_increase=spec.max_increase,
            cap=spec.cap,
            alpha=alpha,
            min_requests=policy.min_requests,
        )
        name = spec.name if len(overlay.models) == 1 else f"{model} {spec.name}"
        bound = f' (bucket le="{stable_p99}")' if spec.above_stable_p99 else ""
        notes.append(f"{name}: {spec.meaning}{bound}")
        results.append((name, result))
    return results, notes, predicts


def evaluate(
    prom: Prometheus,
    overlay: Overlay,
    policy: CanaryAnalysis,
    objectives: Monitoring,
    window: Window | None,
    weight: int,
) -> Evidence:
    """The evidence of one evaluation at ``window`` of a canary at ``weight``; without a window
    (nothing to analyse) only what the pods serve and whether they are scraped."""
    namespace = overlay.env.namespace
    specs = queries.metric_specs(policy, objectives)
    found: list[checks.Check] = []
    results: list[tuple[str, Result]] = []
    notes: list[str] = []
    for model in overlay.models:
        found.append(checks.digest(prom, namespace, model, overlay.model_digest(model, CANARY.canary)))
        found.append(checks.targets(prom, namespace, model, policy.max_scrape_age_seconds))
        if window is not None and window.look:
            model_results, model_notes, predicts = _results(prom, overlay, model, specs, window, policy, objectives)
            results += model_results
            notes += model_notes
            share = checks.traffic_share(
                predicts[CANARY.canary], predicts[CANARY.stable], weight, policy.traffic_tolerance
            )
            found.append(share)
    if window is not None:
        found.append(checks.bake(window.now, window.start + policy.bake_seconds))
    return Evidence(window, found, results, notes)
