"""The trailers a release commit carries, so that a program reads what the commit did without
diffing overlays (``make insights``; ``git log --format='%(trailers)'``).

``Release-Action`` (the command), ``Release-Env`` and, in a blue-green or canary environment,
``Release-Variant`` (the slot or track the release is now pinned in; for ``make canary`` also
``Release-Weight``, the canary's new share); then that variant's release: per model one
``Model-Version``, ``Model-Digest`` and ``Model-Image`` (``<model> <value>``), and the server
image as ``Image-Digest`` (a pin by digest) or ``Image-Tag``, its whole reference; and
``Trainer-Image`` where the command pinned the trainer. ``git revert`` writes its own ``This
reverts commit <id>`` line, which ``make insights`` reads as well. A hand edit without trailers
still counts: insights falls back to the release state's diff.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

from generator.config import Image

Trailer = tuple[str, str]
#: A file each command appends its trailers to, for a script that makes one commit of several
#: edits (the release workflow): it writes them under its own commit message.
COLLECT_ENV_VAR = "ML_GITOPS_TRAILERS_FILE"
#: Every trailer key a release command writes, in the order it writes them.
KEYS = (
    "Release-Action",
    "Release-Env",
    "Release-Variant",
    "Release-Weight",
    "Model-Version",
    "Model-Digest",
    "Model-Image",
    "Image-Digest",
    "Image-Tag",
    "Trainer-Image",
)


def _reference(image: Image | str) -> str:
    return image if isinstance(image, str) else image.reference


def release_trailers(
    action: str,
    envs: Iterable[str] = (),
    variant: str = "",
    *,
    weight: int | None = None,
    versions: Iterable[tuple[str, str]] = (),
    digests: Iterable[tuple[str, str]] = (),
    model_images: Iterable[tuple[str, Image | str | None]] = (),
    image: Image | None = None,
    trainer: Image | None = None,
) -> list[Trailer]:
    """What one release command did, where (the environments it edited), and what that place now
    pins; empty values are left out."""
    out: list[Trailer] = [("Release-Action", action), *(("Release-Env", env) for env in envs)]
    if variant:
        out.append(("Release-Variant", variant))
    if weight is not None:
        out.append(("Release-Weight", str(weight)))
    out += [("Model-Version", f"{model} {version}") for model, version in versions]
    out += [("Model-Digest", f"{model} {digest}") for model, digest in digests if digest]
    out += [("Model-Image", f"{model} {_reference(ref)}") for model, ref in model_images if ref]
    if image is not None:
        out.append(("Image-Digest" if image.digest else "Image-Tag", image.reference))
    if trainer is not None:
        out.append(("Trainer-Image", trainer.reference))
    return out


def collect(trailers: Sequence[Trailer]) -> None:
    """Append the trailers to $ML_GITOPS_TRAILERS_FILE when it is set (one ``Key: value`` a line,
    each line once)."""
    path = os.environ.get(COLLECT_ENV_VAR)
    if not path:
        return
    target = Path(path)
    seen = target.read_text().splitlines() if target.exists() else []
    lines = [f"{key}: {value}" for key, value in trailers]
    with target.open("a") as out:
        out.writelines(f"{line}\n" for line in lines if line not in seen)


def commit_command(root: Path, title: str, trailers: Sequence[Trailer], paths: Sequence[str]) -> str:
    """The ``git commit`` a person runs to commit exactly the edited files, trailers included
    (pasteable from any directory: ``git -C <root>``; ``--trailer`` needs git 2.32 or newer)."""
    words = ["git", "-C", str(root), "commit", "-m", title]
    for key, value in trailers:
        words += ["--trailer", f"{key}: {value}"]
    return shlex.join([*words, "--", *paths])


def message(subject: str, body: str, trailers: Sequence[Trailer]) -> str:
    """A whole commit message: subject, body, and the trailers as its last paragraph."""
    lines = "\n".join(f"{key}: {value}" for key, value in trailers)
    return f"{subject}\n\n{body.strip()}\n\n{lines}\n" if body.strip() else f"{subject}\n\n{lines}\n"
