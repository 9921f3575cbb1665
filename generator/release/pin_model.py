"""``make pin-model ENV=dev VERSION=<n> [MODEL=mnist] [SLOT=...]``: pin a registered model version.

Writes ``MODEL_VERSION`` and ``MODEL_DIGEST`` of the release ConfigMap in
``overlays/<env>/release.yaml`` and the model image's digest in the ``images:`` of
``overlays/<env>/kustomization.yaml``, all from the version's model card
(``registry/<model>/<n>.yaml``), so an environment pins exactly the bytes that were reviewed and
its servers pull exactly those. Without VERSION, the newest card. MODEL defaults to the one
model of platform.yaml.

In blue-green and canary environments the version lands where ``make promote`` puts a candidate:
the **idle** slot or the **canary** track (not one that takes traffic right now), unless
``--variant`` (``SLOT=``) names one; naming the live one is allowed (a hotfix) and said so.

Refused (exit 2, nothing changed): an unknown environment or model, a version without a card
or with an invalid one, a version whose card misses a quality gate of the environment
(``environments[].gates`` in platform.yaml; the line says which and by how much), a card
without a model image for an environment that does not train (its servers pull one), ``--variant``
on a rolling environment or an unknown variant, and a dirty tree. Exit 3: git or kustomize
failed (nothing changed). Exit 4: that version is already pinned there.
"""

from __future__ import annotations

import argparse

from generator.registry import cards
from generator.release import cli
from generator.release.card_rules import card_for, model_image_pin
from generator.release.errors import Refused


def pin_model(args: argparse.Namespace) -> int:
    overlay = cli.open_overlay(args, args.env, check_clean=False)
    env = overlay.env
    models = overlay.models
    model = args.model or (models[0] if len(models) == 1 else "")
    if model not in models:
        raise Refused(
            f"unknown model {args.model!r} (platform.yaml has: {', '.join(models)})"
            if args.model
            else f"platform.yaml has several models ({', '.join(models)}): name one with MODEL="
        )
    version = args.version
    if not version:
        registered = cards.registered_versions(overlay.root, model)
        if not registered:
            raise Refused(f"{model} has no card under registry/{model}/: make register first")
        version = str(registered[-1])
    elif not (version.isascii() and version.isdigit() and not version.startswith("0")):
        raise Refused(f"VERSION must be a positive integer, got {version!r}")
    if args.variant:
        variant, where = overlay.strategy.named_variant(overlay, args.variant)
    else:
        variant, where = overlay.strategy.landing(overlay)
    card = card_for(overlay, model, version)
    cli.ensure_clean(args, overlay.root)  # after the input checks: a typo is named first

    image = model_image_pin(overlay, card)
    old_version, old_digest = overlay.model_version(model, variant), overlay.model_digest(model, variant)
    old_image = overlay.model_image(model, variant)
    overlay.set_model_version(model, version, variant)
    overlay.set_model_digest(model, card.digest, variant)
    overlay.set_model_image(model, image, variant)
    target = env.name + (f" {where}" if where else "")
    edit = cli.Edit(
        overlay, f"pin-model {target}: {model} v{version} ({card.digest[:19]}, {card.headline()})", variant=variant
    )
    edit.note(f"{model} model version", old_version, version)
    edit.note(f"{model} model digest", old_digest or "(none)", card.digest)
    edit.note(
        f"{model} model image", old_image.reference if old_image else "(none)", image.reference if image else "(none)"
    )
    return cli.finish(
        "pin-model", edit, f"{target} already pins {model} v{version} ({card.digest[:19]})", dry_run=args.dry_run
    )


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("pin-model", __doc__)
    p.add_argument("--env", required=True, help="environment name from platform.yaml")
    p.add_argument("--version", default="", help="a registered version (default: the newest card)")
    p.add_argument("--model", default="", help="model name (default: the one model of platform.yaml)")
    p.add_argument("--variant", help="blue-green slot or canary track (default: idle slot / canary track)")
    return cli.run("pin-model", p, argv, pin_model)


if __name__ == "__main__":
    import sys

    sys.exit(main())
