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
from generator.release.card_rules import check_release_cards
from generator.release.errors import Refused
from generator.release.overlay import Overlay, Release


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
        if image is not None and card.artifact is not None and card.mismatch(card.digest, image.reference):
            raise Refused(
                f"{source.env.name}: {card.pin_problem(card.digest, image.reference)}: fix the source with "
                f"make pin-model ENV={source.env.name} VERSION={version} first"
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


def promote(args: argparse.Namespace) -> int:
    if args.source == args.target:
        raise Refused(f"FROM and TO are both {args.source!r}: promote between two environments")
    target = cli.open_overlay(args, args.target)
    source = Overlay(target.root, target.platform, cli.find_env(target.platform, args.source))
    release, where_from = source.live_release()
    trainer = source.trainer_pin()
    variant, where_to = target.strategy.landing(target)

    check_release_cards(target, release)
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
        variant=variant,
        trainer=trainer,
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
    if rc == 0:
        for line in target.strategy.after_promotion(target, variant):
            print(f"  {line}")
    return rc


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("promote", __doc__)
    p.add_argument("--from", dest="source", required=True, metavar="ENV", help="environment to copy from")
    p.add_argument("--to", dest="target", required=True, metavar="ENV", help="environment to copy into")
    return cli.run("promote", p, argv, promote)


if __name__ == "__main__":
    import sys

    sys.exit(main())
