"""``make canary ENV=prod-canary WEIGHT=25``: one step of a canary release, as one commit.

WEIGHT is the canary's percentage of production traffic, an integer 0..100:

1..99  The HTTPRoute and GRPCRoute weights become stable ``100-W``, canary ``W`` (they always sum to 100).
       The replica split follows too, for clusters without a Gateway, where the plain Service
       selects both tracks and traffic follows the pod ratio. The track total T = stable +
       canary replicas is kept (at least 2, so that both tracks have a pod):
       ``canary = min(T - 1, max(1, round(T * W / 100)))``, ``stable = T - canary``, where a tie
       (x.5) rounds toward stable, the safer side.
       With T = 4: W=10 gives 3+1 (25 % of pods), W=50 gives 2+2, W=90 gives 1+3;
       with T = 3: W=10 gives 2+1, W=50 gives 2+1 (tie), W=90 gives 1+2.
100    Promote: the stable track takes the canary's server image and model version(s), the
       weights go back to 100/0 and all T replicas go to stable (canary 0). The canary track
       keeps its pin (now equal to stable), so the history reads naturally.
0      Abort: weights 100/0, all T replicas to stable, canary 0. The canary's image and model
       version stay pinned so the aborted candidate is visible in the overlay and in
       ``make status``; the next ``make promote`` into this environment replaces it.

Refused (exit 2, nothing changed): not a canary environment, WEIGHT not an integer in 0..100,
a dirty tree, WEIGHT 1..100 when the canary runs exactly what
stable runs (promote a candidate first), and WEIGHT=100 while the canary takes no traffic
(weight 0: an aborted or never-tested canary; set a weight first). Exit 3: git or kustomize
failed (nothing changed). Exit 4: the weight is already that.
"""

from __future__ import annotations

import argparse

from generator.release import cli
from generator.release.errors import Refused
from generator.release.overlay import Overlay
from generator.strategy import CANARY
from services.contract import TOTAL_WEIGHT


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods for a weight; see the module docstring."""
    if weight <= 0:
        return total, 0
    if weight >= TOTAL_WEIGHT:
        return total, 0  # promotion: the stable track now runs the canary's release
    total = max(total, 2)
    whole, rest = divmod(total * weight, TOTAL_WEIGHT)
    nearest = whole + (1 if 2 * rest > TOTAL_WEIGHT else 0)  # exact integer rounding; a tie goes to stable
    canary = min(total - 1, max(1, nearest))
    return total - canary, canary


def parse_weight(text: str) -> int:
    try:
        weight = int(text.strip(), 10)
    except (ValueError, AttributeError):
        raise Refused(f"WEIGHT must be an integer from 0 to {TOTAL_WEIGHT}, got {text!r}") from None
    if not 0 <= weight <= TOTAL_WEIGHT:
        raise Refused(f"WEIGHT must be from 0 to {TOTAL_WEIGHT} (percent of traffic to the canary), got {weight}")
    return weight


def step(overlay: Overlay, weight: int) -> cli.Edit:
    """Apply one canary step to the overlay (in memory) and describe it."""
    stable, canary = overlay.variants
    env = overlay.env.name
    stable_release, canary_release = overlay.release(stable), overlay.release(canary)
    if weight > 0 and stable_release == canary_release:
        raise Refused(
            f"the {canary} track of {env} runs exactly what {stable} runs "
            f"({stable_release.describe()}): promote a candidate first, e.g. "
            f"`make promote FROM=staging TO={env}`"
        )
    current = {m: overlay.weights(m) for m in overlay.models}
    if weight == TOTAL_WEIGHT and all(w[canary] == 0 for w in current.values()):
        raise Refused(
            f"the canary of {env} takes no traffic (weight 0: aborted or not started), so it is "
            f"untested: set a weight first (`make canary ENV={env} WEIGHT=10`)"
        )

    if weight == TOTAL_WEIGHT:
        title = f"canary {env}: promote the canary to stable ({canary_release.describe()})"
    elif weight == 0:
        title = f"canary {env}: abort, all traffic back to stable ({stable_release.describe()})"
    else:
        title = f"canary {env}: {weight}% of traffic to the canary ({canary_release.describe()})"
    # The trailers record the release that takes the canary's share: the stable track once the
    # step is 0 (abort) or 100 (the canary's release moved there), else the canary track.
    edit = cli.Edit(overlay, title, variant=canary if 0 < weight < TOTAL_WEIGHT else stable, weight=weight)
    if weight == TOTAL_WEIGHT:
        overlay.set_release(canary_release, stable)
        edit.note(f"{stable} server", stable_release.server.reference, canary_release.server.reference)
        for (model, old), (_, new) in zip(stable_release.versions, canary_release.versions, strict=True):
            edit.note(f"{stable} {model} model version", old, new)
    for model in overlay.models:
        old_weights = current[model]
        new_weights = (
            {stable: TOTAL_WEIGHT - weight, canary: weight}
            if weight < TOTAL_WEIGHT
            else {stable: TOTAL_WEIGHT, canary: 0}
        )
        overlay.set_weights(model, new_weights)
        edit.note(
            f"{model} weights {stable}/{canary}",
            f"{old_weights[stable]}/{old_weights[canary]}",
            f"{new_weights[stable]}/{new_weights[canary]}",
        )
        pods = overlay.replicas(model, stable), overlay.replicas(model, canary)
        split = split_replicas(sum(pods), weight)
        overlay.set_replicas(model, stable, split[0])
        overlay.set_replicas(model, canary, split[1])
        edit.note(f"{model} replicas {stable}+{canary}", f"{pods[0]}+{pods[1]}", f"{split[0]}+{split[1]}")
    return edit


def canary(args: argparse.Namespace) -> int:
    weight = parse_weight(args.weight)
    overlay = cli.open_overlay(args, args.env)
    overlay.strategy.require(CANARY, overlay.env.name)
    edit = step(overlay, weight)
    return cli.finish(
        "canary",
        edit,
        f"{overlay.env.name} is already at canary weight {weight} with that replica split; nothing to change",
        dry_run=args.dry_run,
    )


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("canary", __doc__)
    p.add_argument("--env", required=True, help="a canary environment (strategy: canary in platform.yaml)")
    p.add_argument("--weight", required=True, help="percent of traffic to the canary: 0 aborts, 100 promotes")
    return cli.run("canary", p, argv, canary)


if __name__ == "__main__":
    import sys

    sys.exit(main())
