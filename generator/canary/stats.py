"""The statistics of one metric: counts in, a verdict out.

A metric is a share of bad predicts (5xx, or slower than a bound), counted per track as
``bad`` of ``total``. The canary **fails** a metric when either

- it is worse than stable: a one-sided Fisher exact test (``scipy.stats.fisher_exact``,
  alternative "greater": the canary's odds of a bad predict above stable's) is significant **and**
  the effect, canary share minus stable share, exceeds ``max_increase`` (Kayenta's rule: a
  significant but negligible difference does not fail, nor does a large one that chance explains);
- or it is above the cap (the SLO): a one-sided exact binomial test
  (``scipy.stats.binomtest``) of the canary's share against ``cap`` is significant **and** its
  observed share is above the cap.

A metric may make only one of the two (its other threshold None): the p99 latency is two rows,
one compared with stable and one capped by the objective (``queries.py``).

**Repeated looks.** An evaluation runs every few minutes on a window that grows from the step's
start, so each look is another chance of a false alarm. The k-th look of a step spends
``alpha * 6 / (pi**2 * k**2)``: these sum to at most ``alpha`` over any number of looks (the
union bound over sum 1/k^2 = pi^2/6), so the chance that a healthy canary ever fails at one step is
at most ``alpha``, however long it bakes. The look number is fixed by time (the window ends at the
last multiple of the interval), so running more often does not add looks.

Fewer than ``min_requests`` predicts in either track is **insufficient**, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from scipy import stats


class Verdict(StrEnum):
    """What a metric says of the canary."""

    PASS = "pass"
    FAIL = "FAIL"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class Counts:
    """Bad predicts of all predicts of one track in the window (whole numbers)."""

    bad: int
    total: int

    @property
    def share(self) -> float:
        """bad / total (0 without requests)."""
        return self.bad / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.bad}/{self.total} ({100 * self.share:.2f}%)"


@dataclass(frozen=True)
class Result:
    """One metric's test: the counts, both p-values, the thresholds and the verdict."""

    canary: Counts
    stable: Counts
    p_vs_stable: float
    p_vs_cap: float
    max_increase: float | None
    cap: float | None
    alpha: float
    verdict: Verdict
    why: str

    @property
    def effect(self) -> float:
        """The canary's share minus stable's."""
        return self.canary.share - self.stable.share


def look_alpha(alpha: float, look: int) -> float:
    """The significance the k-th look of a step may spend (see the module docstring)."""
    if look < 1:
        raise ValueError(f"looks are counted from 1, got {look}")
    return alpha * 6 / (math.pi**2 * look**2)


def counts(bad: float, total: float) -> Counts:
    """Whole counts from Prometheus's ``increase()`` (which extrapolates to the window's edges):
    rounded, bad never above total, neither negative."""
    whole = max(0, round(total))
    return Counts(min(whole, max(0, round(bad))), whole)


def judge(
    canary: Counts,
    stable: Counts,
    *,
    max_increase: float | None,
    cap: float | None,
    alpha: float,
    min_requests: int,
) -> Result:
    """The verdict of one metric at one look (``alpha`` already spent for that look); a test
    whose threshold is None is not made (its p-value is NaN)."""
    if canary.total < min_requests or stable.total < min_requests:
        short = [name for name, c in (("canary", canary), ("stable", stable)) if c.total < min_requests]
        why = f"{' and '.join(short)} answered fewer than {min_requests} predicts"
        return Result(canary, stable, math.nan, math.nan, max_increase, cap, alpha, Verdict.INSUFFICIENT, why)
    p_stable = p_cap = math.nan
    reasons = []
    effect = canary.share - stable.share
    if max_increase is not None:
        table = [[canary.bad, canary.total - canary.bad], [stable.bad, stable.total - stable.bad]]
        p_stable = float(stats.fisher_exact(table, alternative="greater").pvalue)
        if p_stable < alpha and effect > max_increase:
            reasons.append(f"worse than stable by {100 * effect:.2f} points (p={p_stable:.2g})")
    if cap is not None:
        p_cap = float(stats.binomtest(canary.bad, canary.total, cap, alternative="greater").pvalue)
        if p_cap < alpha and canary.share > cap:
            reasons.append(f"above the cap {100 * cap:g}% (p={p_cap:.2g})")
    verdict = Verdict.FAIL if reasons else Verdict.PASS
    why = "; ".join(reasons) or "neither significantly worse than stable nor above the cap"
    return Result(canary, stable, p_stable, p_cap, max_increase, cap, alpha, verdict, why)
