"""``make bootstrap [MODEL=mnist] [MODEL_ROOT=models] [PLAIN_HTTP=1]``: a first servable version, everywhere.

What a fresh cluster needs before anything serves, in one command and one commit: trains the next
version of MODEL locally (as ``make train``), pushes its model image to ``modelArtifacts.repository``
of ``platform.yaml`` (as ``make push-model``), writes its model card (as ``make register``), pins it
in every environment, slot and track (as ``make pin-model``), and commits the card and the pins
together. Once that commit is merged, every environment pulls exactly the image git pins; nothing
is copied anywhere. Set ``modelArtifacts.repository`` (and log in to that registry: ``podman
login``) first. Unlike the other release commands, bootstrap commits: the commit is what a reviewer
reads, so it is made whole or not at all.

Refused (exit 2, nothing changed): a dirty tree, an unknown model, a version that misses the
quality gates of an environment (``environments[].gates``; the line says which and by how much;
the pushed image stays in the registry, unpinned). Exit 3: training, the registry, kustomize or git
failed (every file written is restored, nothing is committed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from generator.conventions import card_path
from generator.files import write_atomic
from generator.paths import REPO_ROOT
from generator.registry import cards
from generator.registry.next_version import next_version
from generator.release import cli, git
from generator.release.card_rules import check_gates, model_image_pin
from generator.release.errors import EXIT_OK, Refused, ToolFailed
from generator.release.model_store import package_version
from generator.release.overlay import Overlay, load_platform, resolve_root
from generator.release.trailers import message as commit_message
from generator.release.trailers import release_trailers
from services import model_image, registry_client


def train(model_root: Path, model: str, version: int) -> None:
    """Train ``version`` into ``model_root`` with the trainer ``make train`` runs; its log streams through."""
    command = [sys.executable, "-m", "services.training.train", "--model-root", str(model_root)]
    command += ["--model-name", model, "--version", str(version)]
    print(f"bootstrap: training {model} v{version} into {model_root / model / str(version)}", flush=True)
    # Run from this checkout (the trainer's code, whose revision the card records), not ``root``.
    if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
        raise ToolFailed(f"training {model} v{version} failed (its log is above); nothing was pushed or written")


def push(root: Path, model_root: Path, model: str, version: int, repository: str, plain_http: bool) -> str:
    """Package and push the version's model image; its digest."""
    artifact = package_version(root, model, str(version), model_root)
    try:
        digest = registry_client.push(artifact.layout, repository, str(version), plain_http=plain_http)
    except model_image.ArtifactError as exc:
        raise ToolFailed(f"{repository}:{version}: {exc}") from exc
    print(f"bootstrap: pushed {repository}@{digest}", flush=True)
    return digest


def pin_everywhere(root: Path, model: str, card: cards.Card) -> list[Overlay]:
    """Every environment's overlay with ``card`` pinned in each of its variants (not yet written);
    refused, before anything is written, when the card misses an environment's gates."""
    platform = load_platform(root)
    overlays = []
    for env in platform.environments:
        overlay = Overlay(root, platform, env)
        check_gates(overlay, card)
        image = model_image_pin(overlay, card)
        for variant in env.strategy.released_variants:
            overlay.set_model_version(model, str(card.version), variant)
            overlay.set_model_digest(model, card.digest, variant)
            overlay.set_model_image(model, image, variant)
        overlays.append(overlay)
    return overlays


def bootstrap(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    platform = load_platform(root)
    models = [m.name for m in platform.models]
    model = args.model or models[0]
    if model not in models:
        raise Refused(f"unknown model {model!r} (platform.yaml has: {', '.join(models)})")
    try:
        git.ensure_clean(root)
    except Refused as exc:  # bootstrap commits: there is no batching it with other edits
        raise Refused(str(exc).split(" (or put several edits")[0]) from exc
    model_root = Path(args.model_root).resolve()
    version = next_version(model_root, model, root)
    repository = platform.artifact_repository(model)

    train(model_root, model, version)
    digest = push(root, model_root, model, version, repository, args.plain_http)
    version_dir = model_root / model / str(version)
    try:
        data = cards.build_card(version_dir, model, version, {"repository": repository, "digest": digest})
    except cards.CardError as exc:
        raise Refused("\n".join(exc.problems)) from exc
    rel = card_path(model, version)
    card = cards.Card(rel, data)
    overlays = pin_everywhere(root, model, card)

    written: list[str] = []
    try:
        write_atomic(root / rel, cards.render_card(data).encode())
        written.append(rel)
        for overlay in overlays:
            written += overlay.commit()
        git.git(root, "add", "--", *written)
        trailers = release_trailers(
            "bootstrap",
            [overlay.env.name for overlay in overlays],
            versions=[(model, str(version))],
            digests=[(model, card.digest)],
            model_images=[(model, card.image)],
        )
        message = commit_message(
            f"bootstrap: {model} v{version}, pinned in every environment",
            f"Trained by make bootstrap, pushed as {repository}@{digest}\n(files {card.digest}, {card.headline()}).",
            trailers,
        )
        git.git(root, "commit", "--quiet", "--message", message, "--", *written)
    except BaseException as exc:  # a failed render or git, or Ctrl-C: whole or not at all
        for overlay in overlays:
            for f in overlay.changed_files():
                write_atomic(f.path, f.original)
        (root / rel).unlink(missing_ok=True)
        if written:
            git.git(root, "reset", "--quiet", "--", *written)
        if isinstance(exc, (ToolFailed, OSError)):
            raise ToolFailed(f"nothing was committed, every file is restored: {exc}") from exc
        raise
    print(f"bootstrap: committed {rel} and the pins of {len(overlays)} environments:")
    print(f"  {model} v{version}: {repository}@{digest} ({card.headline()})")
    print("  next: push the commit for review; once merged, every environment pulls that image")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("bootstrap", __doc__, edits=False)
    p.add_argument("--model", default="", help="model name (default: the first model of platform.yaml)")
    p.add_argument("--model-root", default="models", help="where the version is trained (default: models)")
    p.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS (a registry on loopback)")
    return cli.run("bootstrap", p, argv, bootstrap)


if __name__ == "__main__":
    sys.exit(main())
