"""How an environment releases: ``rolling``, ``blue-green`` or ``canary`` (platform.yaml
``environments[].strategy``).

A :class:`Strategy` knows its variants (the two slots or tracks a progressive strategy runs side
by side, none for rolling), the pod label that tells them apart, the release files it owns,
which variant takes production traffic, where a promotion lands, and the command that moves
traffic. The constructs, the release commands and the checks ask it instead of comparing names,
so a fourth strategy is one class here plus its construct.

Free of cdk8s and of the release commands (only their exception type), so everything may
import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from generator.release.errors import Refused

#: The release files every strategy owns: image pins and replicas, and the pinned model versions.
COMMON_RELEASE_FILES = ("kustomization.yaml", "release.yaml")


class _Environment(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def overlay(self) -> str: ...


class ReleaseState(Protocol):
    """What a strategy reads of an environment's release files to say which variant is live
    (the release commands' ``Overlay``)."""

    @property
    def env(self) -> _Environment: ...

    @property
    def models(self) -> list[str]: ...

    def weights(self, model: str) -> dict[str, int]: ...

    def common_slot(self, which: str) -> str: ...

    def replicas(self, model: str, variant: str) -> int: ...


@dataclass(frozen=True)
class Strategy:
    """A release strategy; its subclasses say what differs. Compared by identity: use the
    instances below (``ROLLING``, ``BLUE_GREEN``, ``CANARY``), found by name with ``strategy_named``."""

    name: str
    #: The variants, in order: the first starts with the serving capacity, the second idle.
    variants: tuple[str, ...] = ()
    #: The pod label whose value is the variant (``slot``, ``track``); "" without variants.
    variant_label: str = ""
    #: The release file that says which variant takes traffic ("" without variants).
    traffic_file: str = ""
    #: The make target that moves production traffic between the variants ("" without variants).
    traffic_command: str = ""
    #: Whether a HorizontalPodAutoscaler owns the server's replicas (variants run what git pins).
    autoscaled: bool = False
    #: Whether an HTTPRoute splits traffic between the variants by the weights in ``traffic.yaml``.
    routes_by_weight: bool = False

    def __str__(self) -> str:
        return self.name

    @property
    def progressive(self) -> bool:
        """Whether two variants run side by side (blue-green, canary)."""
        return bool(self.variants)

    @property
    def release_files(self) -> tuple[str, ...]:
        """The release files of an overlay of this strategy (``<overlay>/<file>``)."""
        return (*COMMON_RELEASE_FILES, self.traffic_file) if self.traffic_file else COMMON_RELEASE_FILES

    @property
    def released_variants(self) -> tuple[str, ...]:
        """The variants that each pin a model version: ``("",)`` for the single rolling release."""
        return self.variants or ("",)

    @property
    def training_component(self) -> str:
        """The generated component an environment of this strategy adds when it trains
        (``overlays/components/training-<strategy>``): one training Job per released variant."""
        return f"training-{self.name}"

    def variant_services(self, server: str) -> dict[str, str]:
        """The Services this strategy adds beside the shared ``server`` one, by the variant each
        selects (the shared Service itself selects the live variant, or every pod)."""
        return {}

    def shared_service_selector(self) -> dict[str, str]:
        """What the generated component adds to the shared Service's selector ({}: nothing)."""
        return {}

    def where(self, variant: str) -> str:
        """How a command names ``variant`` of this strategy ("" for the rolling release)."""
        return f"{variant} {self.variant_label}" if variant else ""

    def live(self, state: ReleaseState) -> tuple[str, str]:
        """The variant that serves production (what ``make promote`` copies onwards), and how to
        name it."""
        return "", ""

    def landing(self, state: ReleaseState) -> tuple[str, str]:
        """The variant a promoted release (or a new pin) lands in, and how to name it; refused
        when landing there would put an untested release in front of users."""
        return "", ""

    def is_live(self, state: ReleaseState, variant: str) -> bool:
        """Whether ``variant`` takes production traffic now."""
        return True

    def named_variant(self, state: ReleaseState, variant: str) -> tuple[str, str]:
        """A variant named on the command line (``SLOT=``), checked, and how to name it: naming
        the live one is allowed (a hotfix), and said so."""
        env = state.env.name
        if not self.progressive:
            raise Refused(f"{env} is a {self} environment: it has no slots or tracks (drop --variant/SLOT)")
        if variant not in self.variants:
            raise Refused(f"{env} has variants {' and '.join(self.variants)}, not {variant!r}")
        live = self.is_live(state, variant)
        return variant, f"{variant} ({'LIVE: takes production traffic' if live else 'not live'})"

    def after_promotion(self, state: ReleaseState, variant: str) -> list[str]:
        """What to do next once a release landed in ``variant`` (lines to print)."""
        return []

    def require(self, wanted: Strategy, env: str) -> None:
        """Refuse a command that only ``wanted`` environments take, naming the one that fits."""
        if self is not wanted:
            hint = f" (use `make {self.traffic_command}`)" if self.traffic_command else ""
            raise Refused(f"{env} is a {self} environment, not a {wanted} one{hint}")

    def traffic(self, *, live: bool, previewed: bool, weight: int, pod_share: float) -> str:
        """What ``make status`` says of one Deployment's share of production traffic."""
        return "all" if live else "none"


@dataclass(frozen=True)
class Rolling(Strategy):
    """One server, autoscaled; a release replaces it pod by pod."""


@dataclass(frozen=True)
class BlueGreen(Strategy):
    """Two slots; the shared Service selects the active one, a preview Service the idle one, and
    ``make switch`` flips them (``active-slot.yaml``). A promotion lands in the idle slot."""

    @staticmethod
    def preview_service(server: str) -> str:
        """The Service that selects the idle slot, for smoke tests before a switch."""
        return f"{server}-preview"

    def variant_services(self, server: str) -> dict[str, str]:
        return {self.variants[1]: self.preview_service(server)}

    def shared_service_selector(self) -> dict[str, str]:
        return {self.variant_label: self.variants[0]}

    def where(self, variant: str) -> str:
        return f"{self.variant_label} {variant}" if variant else ""

    def live(self, state: ReleaseState) -> tuple[str, str]:
        slot = state.common_slot("active")
        return slot, f"active {self.where(slot)}"

    def landing(self, state: ReleaseState) -> tuple[str, str]:
        slot = state.common_slot("idle")
        return slot, f"idle {self.where(slot)}"

    def is_live(self, state: ReleaseState, variant: str) -> bool:
        return variant == state.common_slot("active")

    def after_promotion(self, state: ReleaseState, variant: str) -> list[str]:
        lines = []
        if any(state.replicas(m, variant) == 0 for m in state.models):
            lines.append(
                f"note: slot {variant} runs 0 replicas, so the preview Service has no pods to smoke-test; "
                f"give it some under replicas: in {state.env.overlay}/kustomization.yaml"
            )
        preview = self.preview_service(f"{state.models[0]}-server")
        switch = f"make {self.traffic_command} ENV={state.env.name}"
        lines.append(f"then (after merge): smoke-test via Service {preview}, then {switch}")
        return lines

    def traffic(self, *, live: bool, previewed: bool, weight: int, pod_share: float) -> str:
        return "ACTIVE" if live else ("preview" if previewed else "none")


@dataclass(frozen=True)
class Canary(Strategy):
    """Two tracks, stable and canary, each with its own Service; an HTTPRoute splits traffic by
    the weights in ``traffic.yaml`` (``make canary``). A promotion lands in the canary track."""

    @property
    def stable(self) -> str:
        """The track that serves production while a canary is tried."""
        return self.variants[0]

    @property
    def canary(self) -> str:
        """The track a candidate release is tried in."""
        return self.variants[1]

    def variant_services(self, server: str) -> dict[str, str]:
        return {track: f"{server}-{track}" for track in self.variants}

    def live(self, state: ReleaseState) -> tuple[str, str]:
        return self.stable, self.where(self.stable)

    def landing(self, state: ReleaseState) -> tuple[str, str]:
        busy = {m: w for m in state.models if (w := state.weights(m)[self.canary]) > 0}
        if busy:
            weights = ", ".join(f"{m} weight {w}" for m, w in busy.items())
            env = state.env.name
            raise Refused(
                f"{env} has a canary in progress ({weights}): finish it first with "
                f"`make {self.traffic_command} ENV={env} WEIGHT=100` (promote) or `WEIGHT=0` (abort)"
            )
        return self.canary, self.where(self.canary)

    def is_live(self, state: ReleaseState, variant: str) -> bool:
        return variant == self.stable or any(state.weights(m)[variant] > 0 for m in state.models)

    def after_promotion(self, state: ReleaseState, variant: str) -> list[str]:
        return [f"then (after merge): make {self.traffic_command} ENV={state.env.name} WEIGHT=10"]

    def traffic(self, *, live: bool, previewed: bool, weight: int, pod_share: float) -> str:
        return f"weight {weight}% (pods {pod_share:g}%)"


ROLLING = Rolling("rolling", autoscaled=True)
BLUE_GREEN = BlueGreen(
    "blue-green",
    ("blue", "green"),
    "slot",
    "active-slot.yaml",
    traffic_command="switch",
)
CANARY = Canary(
    "canary",
    ("stable", "canary"),
    "track",
    "traffic.yaml",
    traffic_command="canary",
    routes_by_weight=True,
)
#: Every strategy, by name; each has a generated server component of that name.
STRATEGIES: dict[str, Strategy] = {s.name: s for s in (ROLLING, BLUE_GREEN, CANARY)}
#: Every variant of every strategy (the suffixes a variant's object names may carry).
ALL_VARIANTS: tuple[str, ...] = tuple(v for s in STRATEGIES.values() for v in s.variants)
#: Every release file any strategy owns, in a stable order.
RELEASE_FILES: tuple[str, ...] = tuple(dict.fromkeys(f for s in STRATEGIES.values() for f in s.release_files))


def strategy_named(name: str) -> Strategy:
    """The strategy called ``name`` (platform.yaml has already held it to the schema's enum)."""
    return STRATEGIES[name]
