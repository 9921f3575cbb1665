"""``make promote FROM=staging TO=prod``: copy what one environment runs into the next.

What is copied: the server image, the trainer image (tag or digest, exactly as pinned) and, for
every model, the version, its files' digest (``MODEL_VERSION``, ``MODEL_DIGEST``) and its model
image by digest (what the target's servers pull: no file is copied anywhere).

Where it is read from (FROM):
  rolling      the environment's single release
  canary       the **stable** track (a canary still under test is not promoted further)
  blue-green   the **active** slot (the one serving production)

Where it goes (TO):
  rolling      the environment's single release
  canary       the **canary** track; then walk it with ``make canary WEIGHT=10/50/100``.
               The canary track gets no traffic until then (weight and replicas are not touched).
  blue-green   the **idle** slot, which the preview Service shows for smoke tests; then
               ``make switch`` makes it active.
The trainer image is one pin per overlay, shared by both variants; its training Job only
trains a version the model store lacks, so changing it does not disturb the serving variant.

Exit 4: the target already runs that. Refused (exit 2, nothing changed): an unknown
environment, FROM equal to TO, a dirty tree, a target with ``requireDigest`` when the source is pinned by tag,
a source without a model image pinned when the target does not train (its servers pull one),
a canary target whose canary still takes traffic (finish it first: ``make canary
WEIGHT=100`` or ``WEIGHT=0``), and, when the target has quality gates (``environments[].gates``
in platform.yaml), a model version without a card, with a digest other than its card's, or
whose card misses a gate (the line says which and by how much). Exit 3: git or kustomize
failed (nothing changed).
"""

from __future__ import annotations

import argparse

from generator.registry import cards
from generator.release import cli
from generator.release.errors import Refused
from generator.release.overlay import Overlay, Release


def check_gates(target: Overlay, release: Release) -> None:
    """Refuse a release whose model cards miss a quality gate of the target environment (no
    gates: nothing to check; ``make validate`` still checks every pin against its card)."""
    if not target.env.gates:
        return
    from generator.release.pin_model import card_for

    for (model, version), (_, digest) in zip(release.versions, release.digests, strict=True):
        card = card_for(target, model, version)
        if digest != card.digest:
            raise Refused(
                f"{model} v{version} is pinned with digest {digest or '(none)'}, not its card's "
                f"({card.path}: {card.digest}): fix the source pin with make pin-model first"
            )


def check_images(source: Overlay, target: Overlay, release: Release) -> None:
    """Refuse to promote a model version without its model image into an environment whose
    servers pull one (every environment that does not train)."""
    if target.env.train:
        return
    for (model, image), (_, version) in zip(release.images, release.versions, strict=True):
        try:
            card = cards.read_card(source.root, model, version)
        except cards.CardError:
            continue  # no card: check_gates and make validate name that
        if image is not None and card.artifact is not None and image.reference != "@".join(card.artifact):
            raise Refused(
                f"{source.env.name} pins {model} v{version} with the model image {image.reference}, but its card "
                f"{card.path} records {'@'.join(card.artifact)}: fix the source with make pin-model "
                f"ENV={source.env.name} VERSION={version} first"
            )
    missing = [model for model, image in release.images if image is None]
    if missing:
        model = missing[0]
        version = dict(release.versions)[model]
        raise Refused(
            f"{source.env.name} pins {model} v{version} without a model image, and {target.env.name}'s "
            f"servers pull one: make push-model and make register VERSION={version}, then "
            f"make pin-model ENV={source.env.name} VERSION={version}"
        )


def source_release(overlay: Overlay) -> tuple[Release, str]:
    """What an environment serves in production, and where in the overlay that is."""
    if overlay.strategy == "canary":
        stable = overlay.variants[0]
        return overlay.release(stable), f"{stable} track"
    if overlay.strategy == "blue-green":
        slot = overlay.common_slot("active")
        return overlay.release(slot), f"active slot {slot}"
    return overlay.release(), ""


def target_variant(overlay: Overlay) -> tuple[str, str]:
    """Where a promoted release lands in an environment: ("", "") for a rolling one. A canary
    track that takes traffic is refused: a new candidate would get that traffic untested."""
    if overlay.strategy == "canary":
        stable, canary = overlay.variants
        running = {m: overlay.weights(m)[canary] for m in overlay.models}
        busy = {m: w for m, w in running.items() if w > 0}
        if busy:
            weights = ", ".join(f"{m} weight {w}" for m, w in busy.items())
            raise Refused(
                f"{overlay.env.name} has a canary in progress ({weights}): "
                f"finish it first with `make canary ENV={overlay.env.name} WEIGHT=100` (promote) "
                f"or `WEIGHT=0` (abort)"
            )
        return canary, f"{canary} track"
    if overlay.strategy == "blue-green":
        slot = overlay.common_slot("idle")
        return slot, f"idle slot {slot}"
    return "", ""


def named_variant(overlay: Overlay, variant: str) -> tuple[str, str]:
    """A slot or track named on the command line (``SLOT=``), checked, and how to say where it
    is: naming the live one is allowed (a hotfix), and said so."""
    env = overlay.env
    if overlay.strategy == "rolling":
        raise Refused(f"{env.name} is a rolling environment: it has no slots or tracks (drop --variant/SLOT)")
    if variant not in overlay.variants:
        raise Refused(f"{env.name} has variants {' and '.join(overlay.variants)}, not {variant!r}")
    if overlay.strategy == "canary":
        live = variant == overlay.variants[0] or any(overlay.weights(m)[variant] > 0 for m in overlay.models)
    else:
        live = variant == overlay.common_slot("active")
    return variant, f"{variant} ({'LIVE: takes production traffic' if live else 'not live'})"


def promote(args: argparse.Namespace) -> int:
    if args.source == args.target:
        raise Refused(f"FROM and TO are both {args.source!r}: promote between two environments")
    target = cli.open_overlay(args, args.target)
    source = Overlay(target.root, target.platform, cli.find_env(target.platform, args.source))
    release, where_from = source_release(source)
    trainer = source.trainer_pin()
    variant, where_to = target_variant(target)

    check_gates(target, release)
    check_images(source, target, release)
    before, trainer_before = target.release(variant), target.trainer_pin()
    target.set_release(release, variant)
    target.set_trainer_pin(trainer)

    src = f"{source.env.name}" + (f" ({where_from})" if where_from else "")
    dst = f"{target.env.name}" + (f" ({where_to})" if where_to else "")
    edit = cli.Edit(
        target,
        f"promote {source.env.name} to {target.env.name}"
        + (f" {where_to}" if where_to else "")
        + f": {release.describe()}",
    )
    edit.note("server", before.server.reference, release.server.reference)
    # A serve-only target runs no trainer: its pin is kept in step, but not reported as a release.
    trains = target.env.train
    edit.note("trainer" if trains else "trainer (unused here: serve-only)", trainer_before.reference, trainer.reference)
    for (model, old), (_, new) in zip(before.versions, release.versions, strict=True):
        edit.note(f"{model} model version", old, new)
    for (model, old), (_, new) in zip(before.digests, release.digests, strict=True):
        edit.note(f"{model} model digest", old or "(none)", new or "(none)")
    for (model, old_image), (_, new_image) in zip(before.images, release.images, strict=True):
        edit.note(
            f"{model} model image",
            old_image.reference if old_image else "(none)",
            new_image.reference if new_image else "(none)",
        )
    with_trainer = f", trainer {trainer.short}" if trains else ""
    edit.title = f"promote {src} -> {dst}: {release.describe()}{with_trainer}"
    nothing = f"{dst} already runs what {src} runs ({release.describe()}{with_trainer})"
    rc = cli.finish("promote", edit, nothing, dry_run=args.dry_run)
    if rc == 0 and target.strategy == "blue-green":
        empty = [m for m in target.models if target.replicas(m, variant) == 0]
        if empty:
            print(
                f"  note: slot {variant} runs 0 replicas, so the preview Service has no pods to smoke-test; "
                f"give it some under replicas: in {target.env.overlay}/kustomization.yaml"
            )
    if rc == 0 and variant:
        follow = (
            f"make canary ENV={target.env.name} WEIGHT=10"
            if target.strategy == "canary"
            else f"smoke-test via Service {target.models[0]}-server-preview, then make switch ENV={target.env.name}"
        )
        print(f"  then (after merge): {follow}")
    return rc


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("promote", __doc__)
    p.add_argument("--from", dest="source", required=True, metavar="ENV", help="environment to copy from")
    p.add_argument("--to", dest="target", required=True, metavar="ENV", help="environment to copy into")
    return cli.run("promote", p, argv, promote)


if __name__ == "__main__":
    import sys

    sys.exit(main())
