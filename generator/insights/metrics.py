"""The four DORA keys and the model's lead times, per environment and for all of them, each with
its numerator, denominator and the commits behind it.

Definitions (generator/insights/README.md): deployment frequency is deployments per week of the
window; lead time for changes runs from each carried commit's author time to the deployment that
first carried it into the environment, the environment's first deployment in the window excluded
(its carried commits may reach back before the window); a model's lead time runs from its card's
``created`` time to its first pin in the environment; the stage wait from the first pin in the
nearest environment listed earlier in platform.yaml that had the version before; the change
failure rate is failed deployments (canary catches counted apart) over deployments; time to
restore is ``failures.Failure.restore_seconds``. Quantiles are nearest-rank over whole seconds.
Below ``MIN_SAMPLES`` samples (or deployments, for the failure rate) a figure says
"not enough data" instead of a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from generator.insights.failures import Failure, find_failures
from generator.insights.history import Deployment, History

#: The fewest samples a quantile or a ratio is given for; below it: "not enough data".
MIN_SAMPLES = 3
QUANTILES = (0.5, 0.9)
WEEK = 7 * 24 * 3600
OK, THIN = "ok", "not enough data"
ALL = "all"


def duration(seconds: int | None) -> str:
    """Seconds as the largest unit that fits (``2.5h``), ``n/a`` for None."""
    if seconds is None:
        return "n/a"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Window:
    """The time window the figures cover, in Unix seconds, both ends included."""

    since: int
    until: int

    def holds(self, time: int) -> bool:
        """Whether ``time`` lies in the window."""
        return self.since <= time <= self.until

    @property
    def weeks(self) -> float:
        """The window's length in weeks."""
        return (self.until - self.since) / WEEK


def nearest_rank(values: list[int], q: float) -> int:
    """The nearest-rank ``q`` quantile of ``values`` (one of them, never interpolated)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def quantile_figure(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A figure of ``samples`` (each with ``seconds``): count, quantiles and every sample."""
    seconds = [s["seconds"] for s in samples]
    enough = len(seconds) >= MIN_SAMPLES
    ordered = sorted(samples, key=lambda s: (s["seconds"], sorted(s.items())))
    return {
        "status": OK if enough else THIN,
        "samples": len(seconds),
        "unit": "seconds",
        "quantiles": {f"p{round(q * 100)}": (nearest_rank(seconds, q) if enough else None) for q in QUANTILES},
        "values": ordered,
    }


def ratio_figure(numerator: list[str], denominator: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ratio with both counts and the commits behind each."""
    enough = len(denominator) >= MIN_SAMPLES
    return {
        "status": OK if enough else THIN,
        "value": round(len(numerator) / len(denominator), 6) if enough else None,
        "numerator": len(numerator),
        "denominator": len(denominator),
        "numeratorCommits": numerator,
        "denominatorCommits": denominator,
        **(extra or {}),
    }


def _first_pins(deployments: list[Deployment]) -> dict[tuple[str, str, str], Deployment]:
    """The deployment that first pinned each (model, version, digest) in one environment."""
    first: dict[tuple[str, str, str], Deployment] = {}
    for d in deployments:
        for variant in d.after.variants:
            for pin in variant.models:
                if pin.version is not None:
                    first.setdefault((pin.model, pin.version, pin.digest or ""), d)
    return first


@dataclass
class EnvFigures:
    """The samples of one environment, gathered once and summed into figures."""

    deployments: list[Deployment]
    failures: list[Failure]
    lead: list[dict[str, Any]]
    model_lead: list[dict[str, Any]]
    waits: list[dict[str, Any]]


def _gather(history: History, window: Window) -> dict[str, EnvFigures]:
    gathered: dict[str, EnvFigures] = {}
    firsts = {env: _first_pins(ds) for env, ds in history.deployments.items()}
    order = list(history.environments)
    for env, strategy in history.environments.items():
        all_deployments = history.deployments[env]
        inside = [d for d in all_deployments if window.holds(d.time)]
        failures = [f for f in find_failures(all_deployments, strategy) if window.holds(f.failed.time)]
        lead = [
            {"commit": sha, "deployment": d.commit.sha, "seconds": d.time - history.author_times[sha]}
            for d in inside[1:]
            for sha in d.carried
        ]
        model_lead = []
        waits = []
        for (model, version, digest), d in sorted(firsts[env].items()):
            if not window.holds(d.time):
                continue
            created = history.card_created(model, version, digest)
            key = {"model": model, "version": version, "digest": digest or None, "deployment": d.commit.sha}
            if created is not None:
                model_lead.append({**key, "seconds": d.time - created})
            earlier = [
                (firsts[e][(model, version, digest)].time, e)
                for e in order[: order.index(env)]
                if (model, version, digest) in firsts[e] and firsts[e][(model, version, digest)].time <= d.time
            ]
            if earlier:
                time, source = max(earlier, key=lambda pair: (pair[0], order.index(pair[1])))
                waits.append({**key, "from": source, "seconds": d.time - time})
        gathered[env] = EnvFigures(inside, failures, lead, model_lead, waits)
    return gathered


def _figures(f: EnvFigures, window: Window) -> dict[str, Any]:
    shas = [d.commit.sha for d in f.deployments]
    counted = [x for x in f.failures if not x.caught_by_canary]
    caught = [x for x in f.failures if x.caught_by_canary]
    return {
        "deployments": {
            "count": len(shas),
            "perWeek": round(len(shas) / window.weeks, 6) if window.weeks > 0 else None,
            "weeks": round(window.weeks, 6),
            "commits": shas,
        },
        "leadTime": quantile_figure(f.lead),
        "modelLeadTime": quantile_figure(f.model_lead),
        "stageWait": quantile_figure(f.waits),
        "changeFailureRate": ratio_figure(
            [x.failed.commit.sha for x in counted],
            shas,
            {"caughtByCanary": len(caught), "caughtByCanaryCommits": [x.failed.commit.sha for x in caught]},
        ),
        "timeToRestore": quantile_figure(
            [
                {
                    "deployment": x.failed.commit.sha,
                    "restoredBy": x.restored_by.commit.sha,
                    "cause": x.cause,
                    "seconds": x.restore_seconds,
                }
                for x in f.failures
            ]
        ),
    }


def compute(history: History, window: Window) -> tuple[dict[str, dict[str, Any]], dict[str, list[Failure]]]:
    """The figures of every environment and of all of them together (key ``all``), and each
    environment's failures in the window (for the deployment rows)."""
    gathered = _gather(history, window)
    figures = {env: _figures(f, window) for env, f in gathered.items()}
    total = EnvFigures(
        *(
            [item for f in gathered.values() for item in getattr(f, name)]
            for name in ("deployments", "failures", "lead", "model_lead", "waits")
        )
    )
    total.deployments.sort(key=lambda d: (d.time, d.env))
    figures[ALL] = _figures(total, window)
    return figures, {env: f.failures for env, f in gathered.items()}
