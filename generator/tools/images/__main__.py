"""``python -m generator.tools.images``: build the service images, make the base, push by digest.

Exit codes: 0 success, 2 bad arguments, 3 an engine, mmdebstrap or git failed.
"""

from __future__ import annotations

import argparse
import sys

from generator.tools import ToolError
from generator.tools.images.base import build_debian_base, resolve_base
from generator.tools.images.build import build_images, code_revision, image_specs, push_image, report
from generator.tools.images.engine import detect_engine

EXIT_OK, EXIT_BAD_INPUT, EXIT_TOOL = 0, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m generator.tools.images", description=__doc__)
    parser.add_argument("--engine", help="docker, podman or buildah (default: $CONTAINER_ENGINE, else detected)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build the server and trainer images tagged with the code revision")
    p.add_argument("--base", help="base image (default: the Dockerfiles' BASE_IMAGE, else a Debian-made one)")
    p.add_argument("--image", action="append", choices=("server", "trainer"), help="only this image (repeatable)")
    p = sub.add_parser("base", help="print the base image builds use, making it with mmdebstrap if needed")
    p.add_argument("--debian", action="store_true", help="make and use the Debian-made base even if the default exists")
    p = sub.add_parser("references", help="print '<name> <reference>' of each image at this revision")
    p = sub.add_parser("push", help="push the built images; print '<name> <digest>' lines")
    p.add_argument("--image", action="append", choices=("server", "trainer"), help="only this image (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command and run it."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "references":
            revision = code_revision()
            for name, spec in image_specs().items():
                print(f"{name} {spec.reference(revision)}")
            return EXIT_OK
        engine = detect_engine(args.engine)
        dockerfile = image_specs()["server"].dockerfile
        if args.command == "base":
            print(build_debian_base(engine) if args.debian else resolve_base(engine, dockerfile))
        elif args.command == "build":
            print(f"images: engine {engine.name} ({engine.binary})")
            built = build_images(engine, resolve_base(engine, dockerfile, args.base), args.image)
            report(built)
        elif args.command == "push":
            revision = code_revision()
            if revision.endswith("-dirty"):
                print("images: refusing to push a build of uncommitted changes", file=sys.stderr)
                return EXIT_BAD_INPUT
            for name in args.image or list(image_specs()):
                print(f"{name} {push_image(engine, image_specs()[name].reference(revision))}")
    except ToolError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return EXIT_TOOL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
