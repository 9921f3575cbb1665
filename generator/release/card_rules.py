"""The release rules every command shares about model cards: a version is pinned only from a
valid card that meets the environment's quality gates, and an environment whose servers pull
model images gets the image that card records."""

from __future__ import annotations

from generator.registry import cards, gates
from generator.release.errors import Refused
from generator.release.overlay import Overlay, Pin, Release


def card_for(overlay: Overlay, model: str, version: str) -> cards.Card:
    """The checked card of ``model`` ``version``, refused when missing, invalid or below the gates
    of the overlay's environment."""
    try:
        card = cards.read_card(overlay.root, model, version)
    except cards.CardError as exc:
        raise Refused("\n".join(exc.problems)) from exc
    check_gates(overlay, card)
    return card


def check_gates(overlay: Overlay, card: cards.Card) -> None:
    """Refuse a card that misses a quality gate of the overlay's environment, saying by how much."""
    missed = gates.misses(card, dict(overlay.env.gates))
    if missed:
        raise Refused(
            f"{card.model} v{card.version} ({card.path}) does not meet the gates of {overlay.env.name} "
            f"(platform.yaml environments[].gates): " + "; ".join(missed)
        )


def model_image_pin(overlay: Overlay, card: cards.Card) -> Pin | None:
    """The model image a card records, as the overlay pins it; refused where servers pull images
    (every environment that does not train) and the card has none."""
    if card.artifact is not None:
        repository, digest = card.artifact
        return Pin(repository, "", digest)
    if not overlay.env.train:
        raise Refused(
            f"{card.path} records no model image (registered before model images), and "
            f"{overlay.env.name}'s servers pull one: train a new version, make push-model, make register"
        )
    return None


def check_release_cards(target: Overlay, release: Release) -> None:
    """Refuse a release whose model cards miss a quality gate of the target environment (no
    gates: nothing to check; ``make validate`` still checks every pin against its card)."""
    if not target.env.gates:
        return
    for (model, version), (_, digest) in zip(release.versions, release.digests, strict=True):
        card = card_for(target, model, version)
        if problem := card.pin_problem(digest):
            raise Refused(f"{problem}: fix the source pin with make pin-model first")
