"""``make set-image ENV=dev IMAGE=server TAG=<tag>`` (or ``DIGEST=sha256:...``): pin one image.

IMAGE is ``server`` or ``trainer`` (the repositories under ``images:`` in platform.yaml). The
entry under ``images:`` in ``overlays/<env>/kustomization.yaml`` gets ``newTag:`` or ``digest:``;
setting one removes the other. This is what CI runs after it builds an image (see
``.github/workflows/release.yaml``), so a merge to main ends with a pull request that moves dev.

``--variant`` (``SLOT=``) picks the server variant of a blue-green or canary environment. Without
it the candidate goes where ``make promote`` puts one: the **idle** slot (blue-green) or the
**canary** track (canary), never straight into production traffic (and, like promote, not into a
canary track that takes traffic right now). Naming the active slot or
the stable track explicitly is allowed (a hotfix), and said so in the output.

Refused (exit 2, nothing changed): an unknown environment or IMAGE, neither or both of TAG and
DIGEST, an invalid tag (``latest`` included: it is mutable) or digest, a tag on an environment
with ``requireDigest``, ``--variant`` on a rolling environment or with ``IMAGE=trainer`` (one
trainer pin serves both variants), an unknown variant, a dirty tree (``--allow-dirty`` or
``ML_GITOPS_ALLOW_DIRTY=1`` to batch several set-image calls into one commit, as CI does).
Exit 3: git or kustomize failed (nothing changed). Exit 4: that image is already pinned.
"""

from __future__ import annotations

import argparse

from generator.release import cli
from generator.release.errors import Refused
from generator.release.overlay import Pin, check_digest, check_tag

IMAGES = ("server", "trainer")


def set_image(args: argparse.Namespace) -> int:
    if args.image not in IMAGES:
        raise Refused(f"IMAGE must be one of {', '.join(IMAGES)}, got {args.image!r}")
    if bool(args.tag) == bool(args.digest):
        raise Refused("give exactly one of TAG (--tag) and DIGEST (--digest)")
    if args.tag:
        check_tag(args.tag)
    else:
        check_digest(args.digest)
    overlay = cli.open_overlay(args, args.env, check_clean=False)
    env = overlay.env
    variant, where = "", ""
    if args.variant:
        if args.image == "trainer" and overlay.strategy.progressive:
            raise Refused("the trainer image is one pin shared by both variants: drop --variant/SLOT")
        variant, where = overlay.strategy.named_variant(overlay, args.variant)
    elif args.image == "server":
        variant, where = overlay.strategy.landing(overlay)  # where promote puts a candidate (refused mid-canary)
    cli.ensure_clean(args, overlay.root)  # after the input checks: a typo is named first

    if args.image == "server":
        before = overlay.server_pin(variant)
    else:
        before = overlay.trainer_pin()
    pin = Pin(before.repository, args.tag or "", args.digest or "")
    if args.image == "server":
        overlay.set_server_pin(pin, variant)
    else:
        overlay.set_trainer_pin(pin)
    target = f"{env.name}" + (f" {where}" if where else "")
    edit = cli.Edit(overlay, f"set-image {target}: {args.image} {pin.short}", variant=variant)
    if args.image != "server":
        edit.trainer, edit.trainer_only = pin, True
    edit.note(args.image, before.reference, pin.reference)
    return cli.finish("set-image", edit, f"{target} already pins {args.image} {pin.reference}", dry_run=args.dry_run)


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("set-image", __doc__)
    p.add_argument("--env", required=True, help="environment name from platform.yaml")
    p.add_argument("--image", required=True, help="server or trainer")
    p.add_argument("--tag", help="image tag, e.g. the commit SHA CI built")
    p.add_argument("--digest", help="image digest, sha256:<64 hex>")
    p.add_argument("--variant", help="blue-green slot or canary track of the server (default: idle slot / canary)")
    return cli.run("set-image", p, argv, set_image)


if __name__ == "__main__":
    import sys

    sys.exit(main())
