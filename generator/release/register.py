"""``make register MODEL=mnist VERSION=<n> [MODEL_ROOT=models]``: write a version's model card.

Reads ``<MODEL_ROOT>/<MODEL>/<VERSION>/`` (``--model-root`` is relative to the current directory,
the repository root under ``make``) (``metadata.json`` and every file) and writes
``registry/<MODEL>/<VERSION>.yaml`` atomically: held-out metrics, dataset checksum, code
revision, trainer image, seed, workers, created time, the sha256 of every file and the version
digest (``services/artifacts.py``; registry/README.md). Without VERSION, the newest version in
the model store. Commit the card on its own (``git add registry/... && git commit``): it is the
reviewed record that ``make pin-model`` pins and ``make validate`` checks.

``--from-registry`` (``FROM_REGISTRY=1``, VERSION required) registers the version a training Job
pushed instead (``<modelArtifacts.repository>/<MODEL>:<VERSION>``): the tag is resolved to its
digest once, the image is pulled by that digest and its digests checked, and its files must
package into that very digest (the image is one ``make package-model`` would build); the card
records that digest. ``PLAIN_HTTP=1`` for a registry without TLS.

Registering the same directory again is a no-op (exit 0): the card is a function of the bytes
(and of ``modelArtifacts.repository``, which an audit of an older card does not hold against it).
Refused (exit 2, nothing written): a model platform.yaml does not list, a missing or unreadable
version directory, a ``metadata.json`` that cannot make a valid card, and an existing card with
different content (a card is never rewritten: a new training is a new version), naming the
fields that differ.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from generator.conventions import card_path
from generator.files import write_atomic
from generator.registry import cards
from generator.release import cli
from generator.release.errors import EXIT_OK, Refused, ToolFailed
from generator.release.model_store import add_version_arguments, find_version_dir, known_model
from generator.release.overlay import resolve_root
from generator.release.trailers import collect, commit_command, release_trailers
from services import model_image, registry_client


def _differences(old: dict, new: dict) -> str:
    """The top-level fields that differ, with the digest and changed files spelled out."""
    fields = [key for key in dict.fromkeys([*old, *new]) if old.get(key) != new.get(key)]
    parts = []
    for key in fields:
        if key == "digest":
            parts.append(f"digest {old.get(key)} in the card, {new.get(key)} in the directory")
        elif key == "files" and isinstance(old.get(key), dict):
            before, after = old[key], new[key]
            changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
            parts.append(
                "files " + ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
            )
        else:
            parts.append(key)
    return "; ".join(parts)


def audited(card: dict, like: dict | None = None) -> dict:
    """What registering again compares: everything the files determine. The image's repository is
    where it was pushed when registered (platform.yaml may name another registry since), and a
    card registered before model images has no ``artifact`` to compare."""
    data = dict(card)
    if "artifact" in data:
        if like is not None and "artifact" not in like:
            del data["artifact"]
        else:
            data["artifact"] = {"digest": data["artifact"]["digest"]}
    return data


@contextmanager
def pulled_version(repository: str, model: str, version: str, plain_http: bool) -> Iterator[tuple[int, Path]]:
    """The version's files as the registry holds them under ``<repository>:<version>``, pulled by
    digest into a temporary directory that lives as long as the block."""
    if not (version.isascii() and version.isdigit() and not version.startswith("0")):
        raise Refused(f"--from-registry needs VERSION, a positive integer (got {version!r})")
    reference = f"{repository}:{version}"
    with tempfile.TemporaryDirectory(prefix="register-") as scratch:
        try:
            digest = registry_client.resolve(reference, plain_http=plain_http)
            registry_client.pull(f"{repository}@{digest}", Path(scratch), plain_http=plain_http)
        except registry_client.RegistryError as exc:
            raise ToolFailed(f"{reference}: {exc}") from exc
        except model_image.ArtifactError as exc:
            raise Refused(f"{reference}: {exc}") from exc
        version_dir = Path(scratch) / model_image.MODEL_PATH
        packaged = model_image.image_digest(version_dir, model, int(version))
        if packaged != digest:
            raise Refused(
                f"{reference} is {digest}, but its files package into {packaged}: not an image make "
                "package-model (or a training Job) built, so its digest is not a function of its files"
            )
        yield int(version), version_dir


def register(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    platform = known_model(root, args.model)
    repository = platform.artifact_repository(args.model)
    with ExitStack() as stack:
        if args.from_registry:
            version, version_dir = stack.enter_context(
                pulled_version(repository, args.model, args.version, args.plain_http)
            )
        else:
            version, version_dir = find_version_dir(Path(args.model_root), args.model, args.version)
        try:
            # The image make push-model pushes: the same files give the same digest, pushed or not.
            digest = model_image.image_digest(version_dir, args.model, version)
            card = cards.build_card(version_dir, args.model, version, {"repository": repository, "digest": digest})
        except cards.CardError as exc:
            raise Refused("\n".join(exc.problems)) from exc
        except model_image.ArtifactError as exc:
            raise Refused(str(exc)) from exc
    source = f"{repository}:{version}" if args.from_registry else str(version_dir)
    rel = card_path(args.model, version)
    path = root / rel
    if path.exists():
        try:
            existing = cards.read_card_file(root, rel)
        except cards.CardError as exc:
            raise Refused(f"{rel} exists and is not a valid card ({exc.problems[0]}); fix it by hand") from exc
        if audited(existing.data) == audited(card, like=existing.data):
            print(f"register: {rel} already records {source} (digest {card['digest']}); nothing written")
            return EXIT_OK
        raise Refused(
            f"{rel} already records {args.model} version {version} with other content "
            f"({_differences(existing.data, card)}): a card is never rewritten, so a new training is a "
            f"new version (make train, then make register VERSION=<new>)"
        )
    write_atomic(path, cards.render_card(card).encode())
    metrics = card["metrics"]
    print(f"register: wrote {rel}: {args.model} v{version}, digest {card['digest']}")
    print(
        f"  holdoutAccuracy {metrics['holdoutAccuracy']}, holdoutLoss {metrics['holdoutLoss']} "
        f"on {metrics['holdoutExamples']} held-out examples; {len(card['files'])} files"
    )
    trailers = release_trailers(
        "register",
        versions=[(args.model, str(version))],
        digests=[(args.model, card["digest"])],
        model_images=[(args.model, cards.Card(rel, card).image)],
    )
    collect(trailers)
    command = commit_command(root, f"register {args.model} v{version}", trailers, [rel])
    print(f"  next: git -C {shlex.quote(str(root))} add {rel} && {command}")
    print("  then: make pin-model ENV=dev")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("register", __doc__, edits=False)
    add_version_arguments(p)
    p.add_argument(
        "--from-registry", action="store_true", help="register the image a training Job pushed (VERSION required)"
    )
    p.add_argument("--plain-http", action="store_true", help="with --from-registry: a registry without TLS")
    return cli.run("register", p, argv, register)


if __name__ == "__main__":
    import sys

    sys.exit(main())
