"""``make switch ENV=prod-blue-green``: flip which slot serves production, as one commit.

In ``active-slot.yaml`` the production Service ``<model>-server`` is pointed at the idle slot
and the preview Service ``<model>-server-preview`` at the previously active one, for every
model. A switch never lowers capacity: the new active slot gets at least the replicas the
active slot had (``replicas:`` in kustomization.yaml), and the old slot keeps its own, so it
stays warm for an instant switch back. Scaling the idle slot down (even to 0) is a later,
separate commit. The old slot keeps its image and model version, so switching back
(``make switch`` again, or ``git revert`` of the commit) is the rollback.

Argo CD applies a scale-up and the selector change in one sync, and the Service only sends
traffic to ready pods; raise the idle slot's replicas ahead of the switch to have them warm.

Refused (exit 2, nothing changed): not a blue-green environment, an unknown environment, a
dirty tree, an ``active-slot.yaml`` that does not name a known slot. Exit 3: git or kustomize
failed (nothing changed). Exit 4: nothing to switch.
"""

from __future__ import annotations

import argparse

from generator.release import cli
from generator.strategy import BLUE_GREEN


def switch(args: argparse.Namespace) -> int:
    overlay = cli.open_overlay(args, args.env)
    overlay.strategy.require(BLUE_GREEN, overlay.env.name)
    active = overlay.common_slot("active")
    idle = overlay.common_slot("idle")
    new_release = overlay.release(idle)
    edit = cli.Edit(overlay, f"switch {overlay.env.name} to slot {idle} ({new_release.describe()})", variant=idle)
    for model in overlay.models:
        overlay.set_active_slot(model, idle)
        edit.note(f"{model}-server (production) selects slot", active, idle)
        counts = overlay.replicas(model, active), overlay.replicas(model, idle)
        if counts[1] < counts[0]:
            overlay.set_replicas(model, idle, counts[0])
            edit.note(f"{model} replicas {active}/{idle}", f"{counts[0]}/{counts[1]}", f"{counts[0]}/{counts[0]}")
    raised = [m for m in overlay.models if f"{m} replicas {active}/{idle}" in " ".join(edit.changes)]
    if raised:
        print(
            f"switch: note: slot {idle} is raised in this same commit, so Argo CD scales it and switches in "
            f"one sync (the Service sends traffic to ready pods only); for warm pods first, raise its "
            f"replicas: in {overlay.env.overlay}/kustomization.yaml in an earlier commit"
        )
    if overlay.release(active) == new_release:
        print(f"switch: note: slots {active} and {idle} run the same release ({new_release.describe()})")
    return cli.finish("switch", edit, f"{overlay.env.name}: nothing to switch", dry_run=args.dry_run)


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("switch", __doc__)
    p.add_argument("--env", required=True, help="a blue-green environment (strategy: blue-green in platform.yaml)")
    return cli.run("switch", p, argv, switch)


if __name__ == "__main__":
    import sys

    sys.exit(main())
