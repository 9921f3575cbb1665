"""Quality gates: ``environments[].gates`` in platform.yaml, checked against a model card's metrics.

Each gate names one card metric and a direction. ``platform.schema.json#/$defs/gates`` lists the
same names (a test keeps the two equal). ``make pin-model`` and ``make promote`` refuse a version
that misses a gate of the target environment, saying which gate and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.registry.cards import Card


@dataclass(frozen=True)
class Gate:
    """One gate: ``metric`` (a key of the card's ``metrics``) must be at least (``minimum``) or
    at most the gate's value."""

    metric: str
    minimum: bool


GATES = {
    "minAccuracy": Gate("holdoutAccuracy", minimum=True),
    "maxLoss": Gate("holdoutLoss", minimum=False),
    "minHoldoutExamples": Gate("holdoutExamples", minimum=True),
}


def _number(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def misses(card: Card, gates: dict[str, Any]) -> list[str]:
    """One line per gate of ``gates`` the card does not meet, naming the metric and the shortfall."""
    out = []
    for name, threshold in sorted(gates.items()):
        gate = GATES[name]
        value = card.metrics[gate.metric]
        short = threshold - value if gate.minimum else value - threshold
        if short > 0:
            where = "below" if gate.minimum else "above"
            out.append(f"{name} {_number(threshold)}: {gate.metric} {_number(value)} is {_number(short)} {where} it")
    return out
