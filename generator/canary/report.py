"""The evidence of a decision as text: the pre-checks, the table of every metric and the window,
the commit message around them, and the trailers a program reads back (``history.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from generator.canary import history
from generator.canary.checks import Check
from generator.canary.decision import Decision, Window
from generator.canary.stats import Result
from generator.release.trailers import Trailer

COLUMNS = ("metric", "canary bad/n", "stable bad/n", "effect", "p vs stable", "p vs cap", "threshold", "verdict")


def iso(seconds: int) -> str:
    """A Unix time as UTC ISO 8601 to the second (``2026-12-07T14:05:00Z``)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_text(window: Window) -> str:
    """The Analysis-Window trailer's value: ``<start>/<end>`` (an ISO 8601 interval)."""
    return f"{iso(window.start)}/{iso(window.end)}"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2g}"


def _row(name: str, r: Result) -> tuple[str, ...]:
    limits = [f"+{100 * r.max_increase:g} pt" if r.max_increase is not None else "", ""]
    limits[1] = f"cap {100 * r.cap:g}%" if r.cap is not None else ""
    threshold = ", ".join([*(x for x in limits if x), f"alpha {r.alpha:.2g}"])
    effect = f"{100 * r.effect:+.2f} pt"
    return (name, str(r.canary), str(r.stable), effect, _p(r.p_vs_stable), _p(r.p_vs_cap), threshold, r.verdict.value)


def table(results: list[tuple[str, Result]]) -> list[str]:
    """Every metric as an aligned plain-text table (a commit message shows it as written)."""
    rows = [COLUMNS, *(_row(name, r) for name, r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


@dataclass(frozen=True)
class Evidence:
    """What one evaluation saw: its window, pre-checks and metric results."""

    window: Window | None  # None: nothing to analyse (no candidate, or weight 0)
    checks: list[Check]
    results: list[tuple[str, Result]]
    #: What each metric counts as a bad predict.
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The evidence as the body of a commit message (and of the printed report)."""
        w = self.window
        if w is None:
            head = "Analysis window: none (nothing to analyse)"
        elif w.look:
            head = f"Analysis window {window_text(w)} ({w.seconds}s, look {w.look} of this step)"
        else:
            head = f"Analysis window: none yet (the first look is at {iso(w.start + 1)} or later)"
        out = [head, "", "Pre-checks:"]
        out += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        if self.results:
            out += ["", "Metrics (bad predicts of all, per track; one-sided tests, canary worse):", ""]
            out += [f"  {line}" for line in table(self.results)]
            out += ["", "Bad predicts:", *(f"  {note}" for note in self.notes)] if self.notes else []
        return out


def subject(env: str, decision: Decision, weight_before: int) -> str:
    """A decision commit's first line."""
    if decision.kind == "HOLD":
        return f"canary-analyze {env}: HOLD at {weight_before}%: {decision.reason}"
    return f"canary-analyze {env}: {decision.kind} {weight_before}% -> {decision.weight}%: {decision.reason}"


def trailers(env: str, decision: Decision, digests: list[tuple[str, str]], window: Window | None) -> list[Trailer]:
    """The Canary-* trailers, the analysed models' digests and the window (before any Release-* ones)."""
    out: list[Trailer] = [
        (history.DECISION, decision.kind.value),
        (history.ENV, env),
        (history.WEIGHT, str(decision.weight)),
        (history.REASON, decision.reason),
    ]
    if decision.failures:
        out.append((history.FAILURES, str(decision.failures)))
    out += [(history.DIGEST, f"{model} {digest}") for model, digest in digests if digest]
    out.append((history.WINDOW, window_text(window) if window is not None and window.look else "none"))
    return out
