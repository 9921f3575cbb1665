"""The trailers a release commit carries, so that a program reads what the commit did without
diffing overlays (``make insights``; ``git log --format='%(trailers)'``).

``Release-Action`` (the command), ``Release-Env`` and, in a blue-green or canary environment,
``Release-Variant`` (the slot or track the release is now pinned in); then that variant's release:
one ``Model-Version`` and one ``Model-Digest`` per model (``<model> <value>``), and the image as
``Image-Digest`` (a pin by digest) or ``Image-Tag``, its whole reference. ``git revert`` writes
its own ``This reverts commit <id>`` line, which ``make insights`` reads as well. A hand edit
without trailers still counts: insights falls back to the release state's diff.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

from generator.config import Image

Trailer = tuple[str, str]
#: Every trailer key a release command writes, in the order it writes them.
KEYS = (
    "Release-Action",
    "Release-Env",
    "Release-Variant",
    "Model-Version",
    "Model-Digest",
    "Image-Digest",
    "Image-Tag",
)


def image_trailer(image: Image | str) -> Trailer:
    """An image pin (or a whole reference) as a trailer: by digest when it is pinned by one."""
    reference = image if isinstance(image, str) else image.reference
    return ("Image-Digest" if "@sha256:" in reference else "Image-Tag", reference)


def release_trailers(
    action: str,
    env: str = "",
    variant: str = "",
    *,
    versions: Iterable[tuple[str, str]] = (),
    digests: Iterable[tuple[str, str]] = (),
    image: Image | str | None = None,
) -> list[Trailer]:
    """What one release command did (to one environment, where it edits one), and what that place
    now pins; ``image`` is a pin or a whole reference (``repo@sha256:...`` or ``repo:tag``)."""
    out: list[Trailer] = [("Release-Action", action)]
    if env:
        out.append(("Release-Env", env))
    if variant:
        out.append(("Release-Variant", variant))
    out += [("Model-Version", f"{model} {version}") for model, version in versions]
    out += [("Model-Digest", f"{model} {digest}") for model, digest in digests if digest]
    if image:
        out.append(image_trailer(image))
    return out


def commit_command(title: str, trailers: Sequence[Trailer], paths: Sequence[str]) -> str:
    """The ``git commit`` a person runs to commit the edit, trailers included (pasteable)."""
    words = ["git", "commit", "-m", title]
    for key, value in trailers:
        words += ["--trailer", f"{key}: {value}"]
    return shlex.join([*words, "--", *paths])


def message(subject: str, body: str, trailers: Sequence[Trailer]) -> str:
    """A whole commit message: subject, body, and the trailers as its last paragraph."""
    lines = "\n".join(f"{key}: {value}" for key, value in trailers)
    return f"{subject}\n\n{body.strip()}\n\n{lines}\n" if body.strip() else f"{subject}\n\n{lines}\n"
