"""STEP, HOLD or ABORT, from what was measured and what git says happened before: pure functions,
no I/O (the window of a look, the next weight, the decision and whether it is recorded)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from generator.canary.checks import Check
from generator.canary.stats import Result, Verdict
from generator.config import CanaryAnalysis
from services.contract import TOTAL_WEIGHT


class Kind(StrEnum):
    """The three decisions."""

    STEP = "STEP"
    HOLD = "HOLD"
    ABORT = "ABORT"


@dataclass(frozen=True)
class Window:
    """The data one evaluation judges: from the end of the step's warm-up to the last multiple of
    the interval before now (Unix seconds); ``look`` counts those multiples (0: no look yet)."""

    set_at: int
    start: int
    end: int
    look: int
    now: int

    @classmethod
    def of(cls, set_at: int, now: int, policy: CanaryAnalysis) -> Window:
        """The window of an evaluation at ``now`` of the weight committed at ``set_at``."""
        start = set_at + policy.warmup_seconds
        look = max(0, (now - start) // policy.interval_seconds)
        return cls(set_at, start, start + look * policy.interval_seconds, look, now)

    @property
    def seconds(self) -> int:
        """Its length."""
        return self.end - self.start


@dataclass(frozen=True)
class Previous:
    """The last decision git records since the current weight was set (resumed from trailers)."""

    kind: str
    reason: str
    failures: int


@dataclass(frozen=True)
class Decision:
    """What to do, the weight afterwards, why, the failing evaluations in a row, and whether a
    commit records it (STEP and ABORT always; a HOLD only when its reason is new and not the
    expected wait of a step)."""

    kind: Kind
    weight: int
    reason: str
    failures: int = 0
    record: bool = False


def next_weight(steps: tuple[int, ...], weight: int) -> int:
    """The first step above ``weight`` (the promotion, TOTAL_WEIGHT, after the last)."""
    return next((s for s in steps if s > weight), TOTAL_WEIGHT)


def _hold(weight: int, reason: str, previous: Previous | None, failures: int = 0, *, quiet: bool = False) -> Decision:
    changed = previous is None or previous.kind != Kind.HOLD or previous.reason != reason
    return Decision(Kind.HOLD, weight, reason, failures, record=changed and not quiet)


def decide(
    policy: CanaryAnalysis,
    weight: int,
    window: Window,
    checks: list[Check],
    results: list[tuple[str, Result]],
    previous: Previous | None,
) -> Decision:
    """The decision of one evaluation of a canary at ``weight`` (above 0)."""
    if window.now > window.start + policy.bake_seconds + policy.max_hold_seconds:
        held = window.now - window.start - policy.bake_seconds
        return Decision(
            Kind.ABORT, 0, f"held {held}s past the bake, over maxHoldSeconds {policy.max_hold_seconds}", record=True
        )
    failed = [c.name for c in checks if not c.ok]
    waiting = failed == ["bake"] or window.look == 0
    if window.look == 0:
        return _hold(weight, "warming up: no look at the data yet", previous, quiet=True)
    if failed:
        return _hold(weight, f"pre-check failed: {', '.join(failed)}", previous, quiet=waiting)
    failing = [name for name, r in results if r.verdict is Verdict.FAIL]
    if failing:
        failures = (previous.failures if previous else 0) + 1
        what = ", ".join(failing)
        if failures >= policy.failures_to_abort:
            return Decision(Kind.ABORT, 0, f"{what} failing, {failures} evaluations in a row", failures, record=True)
        return _hold(
            weight, f"{what} failing ({failures} of {policy.failures_to_abort} in a row abort)", previous, failures
        )
    short = [name for name, r in results if r.verdict is Verdict.INSUFFICIENT]
    if short:
        return _hold(
            weight, f"insufficient data: {', '.join(short)} (fewer than {policy.min_requests} predicts)", previous
        )
    return Decision(Kind.STEP, next_weight(policy.steps, weight), "every metric passes", record=True)
