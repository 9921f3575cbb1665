"""Model pins against the registry in git: what every overlay runs is a reviewed model card.

Two checks, on the files themselves (no model store needed):

- ``model-card``: every ``registry/<model>/<version>.yaml`` fits ``model-card.schema.json``,
  sits at the path its model and version name, and its ``digest`` is the digest of its
  ``files`` (:mod:`generator.registry.cards`).
- ``model-pin``: every release ConfigMap (``overlays/<env>/release.yaml``) pins a version that
  has a valid card, and ``MODEL_DIGEST`` equal to that card's digest. The one pin allowed without
  a digest is a *training request*: an environment that trains (``environments[].train``) may pin
  a version nobody has registered yet, so its training hook publishes it; ``make register`` and
  ``make pin-model`` then record and pin it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generator import release_files
from generator.conventions import DIGEST_KEY, RELEASE_KEY, card_path, release_config_map_model
from generator.inputs import InputError
from generator.registry import cards
from generator.validate.model import Finding
from generator.validate.policies import Environment

CHECKS = {
    "model-card": "every model card under registry/ fits its schema, sits at its path, and digests its files",
    "model-pin": "every pinned model version has a model card and pins that card's digest (MODEL_DIGEST)",
}
RELEASE_FILE = "release.yaml"


def card_findings(root: Path) -> tuple[list[Finding], dict[str, cards.Card]]:
    """The problems of every card in the registry, and the valid cards by repository path."""
    out = [
        Finding(rel, "", "", "", "not a model card path: a card is registry/<model>/<version>.yaml", "model-card")
        for rel in cards.stray_files(root)
    ]
    valid: dict[str, cards.Card] = {}
    for rel in cards.all_card_files(root):
        try:
            valid[rel] = cards.read_card_file(root, rel)
        except cards.CardError as exc:
            out.extend(Finding(rel, "", "", "", line.removeprefix(f"{rel}: "), "model-card") for line in exc.problems)
    return out, valid


def _pin_problem(
    data: dict[str, Any], env: Environment | None, valid: dict[str, cards.Card], root: Path, model: str
) -> tuple[str, str] | None:
    """(field, message) of what is wrong with one release ConfigMap's pin, or None."""
    version, digest = str(data.get(RELEASE_KEY, "")), data.get(DIGEST_KEY)
    rel = card_path(model, version)
    card = valid.get(rel)
    if card is None:
        if (root / rel).exists():
            return RELEASE_KEY, f"{model} v{version}: its card {rel} is not valid (see its model-card findings)"
        if digest is None and env is not None and env.train:
            return None  # a training request: the hook publishes it, then make register
        return RELEASE_KEY, (
            f"{model} v{version} has no model card ({rel} does not exist): register it (make register) "
            "before pinning it" + ("" if env is None or env.train else "; this environment only serves")
        )
    if digest is None:
        return (
            DIGEST_KEY,
            f"{model} v{version} is pinned without its digest: make pin-model VERSION={version} writes {card.digest}",
        )
    if digest != card.digest:
        return DIGEST_KEY, f"{model} v{version} is pinned with {digest}, but its card {rel} has {card.digest}"
    return None


def pin_findings(
    root: Path, overlay_dirs: list[Path], envs: dict[str, Environment], valid: dict[str, cards.Card]
) -> list[Finding]:
    """The release ConfigMaps of every overlay, checked against the valid cards."""
    out: list[Finding] = []
    for directory in overlay_dirs:
        path = directory / RELEASE_FILE
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        try:
            docs = release_files.read_release_file(path, rel)
        except InputError:
            continue  # the release-file check names it
        if release_files.release_file_problems(RELEASE_FILE, docs):
            continue  # likewise: pins are only read from a file of the right shape
        env = envs.get(directory.relative_to(root).as_posix())
        for doc in docs:
            name = doc["metadata"]["name"]
            owner = release_config_map_model(name)
            if owner is None:
                continue  # a ConfigMap that is no release: the cross-reference checks see it
            problem = _pin_problem(doc["data"], env, valid, root, owner[0])
            if problem:
                out.append(Finding(rel, "ConfigMap", name, f"data.{problem[0]}", problem[1], "model-pin"))
    return out


def findings(root: Path, overlay_dirs: list[Path], envs: dict[str, Environment]) -> list[Finding]:
    """Both checks: the cards, and every overlay's pins against them."""
    out, valid = card_findings(root)
    return out + pin_findings(root, overlay_dirs, envs, valid)
