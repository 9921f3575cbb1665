"""``make serve ENV=<environment>``: serve locally what an environment serves.

Prints the server settings that pin the environment's live release of one model, as words for
``env`` (``MODEL_VERSION=1 MODEL_DIGEST=sha256:...``): the rolling environment's pin, a
blue-green environment's active slot, a canary environment's stable track (what
``make promote`` reads as the source). Where it is pinned without a digest (a training request),
MODEL_VERSION alone. The model store must hold that version's files, or the server stays not
ready and says which version it misses.

Exit codes: 0 printed, 2 refused (no ENV, an unknown environment or model; nothing printed).
"""

from __future__ import annotations

import argparse
import sys

from generator.release import cli
from generator.release.errors import EXIT_OK, Refused
from generator.release.overlay import Overlay, find_env, load_platform, resolve_root


def serve_env(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    platform = load_platform(root)
    if not args.env:
        raise Refused(f"name the environment: ENV= one of {', '.join(e.name for e in platform.environments)}")
    overlay = Overlay(root, platform, find_env(platform, args.env))
    release, where = overlay.live_release()
    versions, digests = dict(release.versions), dict(release.digests)
    if args.model not in versions:
        raise Refused(f"{args.env} pins no version of {args.model!r} (it pins: {', '.join(versions)})")
    settings = [f"MODEL_VERSION={versions[args.model]}"]
    if digests.get(args.model):
        settings.append(f"MODEL_DIGEST={digests[args.model]}")
    print(" ".join(settings))
    place = f" ({where})" if where else ""
    print(f"serve-env: {args.env}{place} serves {args.model} v{versions[args.model]}", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("serve-env", __doc__, edits=False)
    p.add_argument("--env", default="", help="the environment whose live release to serve")
    p.add_argument("--model", default="mnist", help="model name from platform.yaml (default: mnist)")
    return cli.run("serve-env", p, argv, serve_env)


if __name__ == "__main__":
    sys.exit(main())
