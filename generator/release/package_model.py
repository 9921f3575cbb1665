"""``make package-model [MODEL=mnist] [VERSION=<n>] [MODEL_ROOT=models]``: a version as an OCI image.

Writes ``<MODEL_ROOT>/<MODEL>/<VERSION>/`` as an OCI image layout under
``.cache/model-artifacts/<MODEL>/<VERSION>/`` (``services/model_image.py``: the files under
``/model/``, one uncompressed layer, sorted entries, fixed owners and times) and prints its
digest: the same files always give the same digest, so anyone can check a pushed image against
the version directory. Without VERSION, the newest version in the model store. ``make
push-model`` pushes it; ``make register`` records the digest in the model card.

Exit codes: 0 written, 2 refused (an unknown model, a missing or unreadable version directory;
nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generator.release import cli
from generator.release.errors import EXIT_OK
from generator.release.model_store import add_version_arguments, package_version
from generator.release.overlay import resolve_root


def package_model(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    artifact = package_version(root, args.model, args.version, Path(args.model_root))
    print(f"package-model: {artifact.model} v{artifact.version} -> {artifact.layout.relative_to(root)}")
    print(f"  image digest {artifact.digest}; files digest {artifact.version_digest}")
    print(f"  next: make push-model MODEL={artifact.model} VERSION={artifact.version}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("package-model", __doc__, edits=False)
    add_version_arguments(p)
    return cli.run("package-model", p, argv, package_model)


if __name__ == "__main__":
    sys.exit(main())
