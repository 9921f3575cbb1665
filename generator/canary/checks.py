"""The pre-checks: what must hold before the metrics mean anything. Any failing one is a HOLD.

- **model digest**: every canary pod serves the model digest git pins for the canary track
  (``inference_model_digest_info``), so the data is the candidate's, not an old pod's;
- **targets**: both tracks have scraped pods, every one up and scraped within
  ``maxScrapeAgeSeconds``, so no track is judged on stale or partial data;
- **traffic share**: the canary's observed share of predicts is within ``trafficTolerance``
  points of its weight in git, so the weight git holds is the one the cluster runs;
- **bake**: the step has run ``bakeSeconds`` past its warm-up.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from generator.canary import queries
from generator.canary.prometheus import Prometheus
from generator.strategy import CANARY


@dataclass(frozen=True)
class Check:
    """One pre-check: its name (what a HOLD's reason names), whether it holds, and the evidence."""

    name: str
    ok: bool
    detail: str


def digest(prom: Prometheus, namespace: str, model: str, pinned: str) -> Check:
    """Every canary pod that Prometheus scrapes serves ``pinned`` and nothing else."""
    name = f"{model} model digest"
    pods = {
        labels.get("instance", "?")
        for labels, value in prom.vector(queries.targets_up(namespace, model))
        if labels.get(CANARY.variant_label) == CANARY.canary
    }
    served: dict[str, set[str]] = defaultdict(set)
    for labels, _ in prom.vector(queries.digests(namespace, model, CANARY.canary)):
        served[labels.get("instance", "?")].add(labels.get("digest", ""))
    if not pods:
        return Check(name, False, f"no {CANARY.canary} pod is scraped, so none reports a digest")
    wrong = {pod: sorted(d) for pod, d in served.items() if d != {pinned}}
    silent = sorted(pods - set(served))
    if wrong or silent:
        parts = [f"{pod} serves {', '.join(d)}" for pod, d in sorted(wrong.items())]
        parts += [f"{pod} serves no model" for pod in silent]
        return Check(name, False, f"git pins {pinned}, but " + "; ".join(parts))
    return Check(name, True, f"all {len(pods)} {CANARY.canary} pod(s) serve {pinned}")


def targets(prom: Prometheus, namespace: str, model: str, max_age: int) -> Check:
    """Both tracks have pods, every one up and freshly scraped."""
    up = prom.vector(queries.targets_up(namespace, model))
    ages = {labels.get("instance", "?"): age for labels, age in prom.vector(queries.scrape_age(namespace, model))}
    by_track: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for labels, value in up:
        by_track[labels.get(CANARY.variant_label, "")].append((labels.get("instance", "?"), value))
    problems = [f"no {track} pod is scraped" for track in CANARY.variants if not by_track.get(track)]
    for track in CANARY.variants:
        for instance, value in by_track.get(track, []):
            age = ages.get(instance, float("inf"))
            if value != 1:
                problems.append(f"{track} pod {instance} is down")
            elif age > max_age:
                problems.append(f"{track} pod {instance} was last scraped {age:.0f}s ago (over {max_age}s)")
    if problems:
        return Check("targets", False, "; ".join(problems))
    counts = ", ".join(f"{track} {len(by_track[track])}" for track in CANARY.variants)
    oldest = max((ages.get(i, 0.0) for pods in by_track.values() for i, _ in pods), default=0.0)
    return Check("targets", True, f"pods up ({counts}), every one scraped within {oldest:.0f}s")


def traffic_share(canary: int, stable: int, weight: int, tolerance: float) -> Check:
    """The canary's observed share of predicts against its weight in git."""
    total = canary + stable
    if total == 0:
        return Check("traffic share", False, "no predicts in the window")
    share = 100 * canary / total
    ok = abs(share - weight) <= tolerance
    detail = f"{share:.1f}% of {total} predicts went to the canary; git says {weight}% (within {tolerance:g} points)"
    return Check("traffic share", ok, detail if ok else detail.replace("(within", "(not within"))


def bake(now: int, done_at: int) -> Check:
    """The step has baked: ``now`` is at or past ``done_at``."""
    if now >= done_at:
        return Check("bake", True, f"baked (done {now - done_at}s ago)")
    return Check("bake", False, f"baking for {done_at - now}s more")
