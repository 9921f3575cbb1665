"""``make push-model [MODEL=mnist] [VERSION=<n>] [MODEL_ROOT=models] [PLAIN_HTTP=1]``: push a version.

Packages the version (as ``make package-model``; the same files give the same digest) and pushes
it to ``<modelArtifacts.repository>/<MODEL>:<VERSION>`` from ``platform.yaml``, then prints
``<repository>@<digest>``: the reference a server pulls (the chart's ``model.artifact.image``).
The registry must store the digest that was computed here, or the push fails. Credentials come
from the container auth files ``podman login`` and ``docker login`` write (``$REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, ``$DOCKER_CONFIG/config.json``,
``~/.docker/config.json``); ``PLAIN_HTTP=1`` talks HTTP to a registry without TLS (a loopback one).

Exit codes: 0 pushed, 2 refused (an unknown model, no ``modelArtifacts.repository``, a missing
version directory), 3 the registry failed or refused the push.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generator.config import ConfigError
from generator.release import cli
from generator.release.errors import EXIT_OK, Refused, ToolFailed
from generator.release.model_store import add_version_arguments, package_version
from generator.release.overlay import load_platform, resolve_root
from services import model_image, registry_client


def push_model(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    try:
        repository = load_platform(root).artifact_repository(args.model)
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    artifact = package_version(root, args.model, args.version, Path(args.model_root))
    try:
        digest = registry_client.push(artifact.layout, repository, str(artifact.version), plain_http=args.plain_http)
    except model_image.ArtifactError as exc:
        raise ToolFailed(f"{repository}:{artifact.version}: {exc}") from exc
    print(f"{repository}@{digest}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("push-model", __doc__, edits=False)
    add_version_arguments(p)
    p.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS (a registry on loopback)")
    return cli.run("push-model", p, argv, push_model)


if __name__ == "__main__":
    sys.exit(main())
