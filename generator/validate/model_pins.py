"""Model pins against the registry in git: what every overlay runs is a reviewed model card.

Three checks, the first two on the files themselves, the third on the rendered overlays (no
model store needed):

- ``model-card``: every ``registry/<model>/<version>.yaml`` fits ``model-card.schema.json``,
  sits at the path its model and version name, and its ``digest`` is the digest of its
  ``files`` (:mod:`generator.registry.cards`).
- ``model-pin``: every release ConfigMap (``overlays/<env>/release.yaml``) pins a version that
  has a valid card, and ``MODEL_DIGEST`` equal to that card's digest. The one pin allowed without
  a digest is a *training request*: an environment that trains (``environments[].train``) may pin
  a version nobody has registered yet, so its training hook publishes it; ``make register`` and
  ``make pin-model`` then record and pin it.
- ``model-image``: every server Deployment that gets its model from a model image (an image
  volume, or the fetch-model init container), as rendered, pins that image by digest, and the
  image is the one the card of the version it serves records (``artifact``): the files a pod
  pulls are the files that were reviewed, with no copy step anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generator.conventions import DIGEST_KEY, RELEASE_KEY, UNPINNED_DIGEST, card_path, release_config_map_model
from generator.inputs import InputError
from generator.registry import cards
from generator.release import files as release_files
from generator.validate.model import Finding, Resource
from generator.validate.policies import Environment
from generator.validate.render import Rendered
from services.contract import FETCH_CONTAINER, MODEL_IMAGE_ENV, MODEL_IMAGE_VOLUME

CHECKS = {
    "model-card": "every model card under registry/ fits its schema, sits at its path, and digests its files",
    "model-pin": "every pinned model version has a model card and pins that card's digest (MODEL_DIGEST)",
    "model-image": "every server that pulls a model image pins, by digest, the image its version's card records",
}
#: The chart's label naming the model a server serves (its release is named after the model).
MODEL_LABEL = "app.kubernetes.io/instance"
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
    problem = card.pin_problem(str(digest))
    return (DIGEST_KEY, problem) if problem else None


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


def model_image(pod: dict) -> tuple[str, str] | None:
    """(field path, reference) of the model image a pod spec pulls, or None when it pulls none."""
    for i, volume in enumerate(pod.get("volumes") or []):
        if isinstance(volume, dict) and volume.get("name") == MODEL_IMAGE_VOLUME and "image" in volume:
            return f"spec.template.spec.volumes[{i}].image.reference", str(volume["image"].get("reference", ""))
    for i, container in enumerate(pod.get("initContainers") or []):
        if isinstance(container, dict) and container.get("name") == FETCH_CONTAINER:
            for j, env in enumerate(container.get("env") or []):
                if isinstance(env, dict) and env.get("name") == MODEL_IMAGE_ENV:
                    return f"spec.template.spec.initContainers[{i}].env[{j}].value", str(env.get("value", ""))
    return None


def _served_version(pod: dict, resources: list[Resource]) -> str | None:
    """The version a server pod serves: the MODEL_VERSION of the release ConfigMap it reads."""
    for container in pod.get("containers") or []:
        for env in (container.get("env") or []) if isinstance(container, dict) else []:
            ref = ((env.get("valueFrom") or {}).get("configMapKeyRef") or {}) if isinstance(env, dict) else {}
            if env.get("name") != RELEASE_KEY or not ref.get("name"):
                continue
            for res in resources:
                if res.kind == "ConfigMap" and res.name == ref["name"]:
                    return str((res.doc.get("data") or {}).get(RELEASE_KEY, ""))
    return None


def image_findings(rendered: Sequence[Rendered], valid: dict[str, cards.Card]) -> list[Finding]:
    """Every rendered server Deployment that pulls a model image, checked against the card of the
    version it serves."""
    out: list[Finding] = []
    for item in rendered:
        for res in item.resources:
            if res.kind != "Deployment":
                continue
            pod = ((res.spec.get("template") or {}).get("spec")) or {}
            pulled = model_image(pod)
            if pulled is None:
                continue
            field, reference = pulled
            if "@sha256:" not in reference or reference.endswith(UNPINNED_DIGEST):
                out.append(
                    res.finding(
                        field,
                        f"model image {reference.partition('@')[0] or '(empty)'} is not pinned by digest: "
                        f"make pin-model ENV={item.name} pins the one its card records",
                        "model-image",
                    )
                )
                continue
            version = _served_version(pod, item.resources)
            if version is None:
                continue  # no release ConfigMap: the cross-reference checks name it
            model = str((res.metadata.get("labels") or {}).get(MODEL_LABEL, ""))
            card = valid.get(card_path(model, version))
            if card is None:
                out.append(
                    res.finding(
                        field,
                        f"serves {model} v{version}, which has no valid card to say which model image holds it",
                        "model-image",
                    )
                )
                continue
            if card.artifact is None:
                out.append(
                    res.finding(
                        field,
                        f"{card.path} records no model image, so nothing says what {reference} holds: "
                        "serve a version registered with its image",
                        "model-image",
                    )
                )
                continue
            if card.mismatch(card.digest, reference):
                out.append(
                    res.finding(
                        field,
                        f"{card.pin_problem(card.digest, reference)}: make pin-model ENV={item.name} VERSION={version}",
                        "model-image",
                    )
                )
    return out


def findings(
    root: Path, overlay_dirs: list[Path], envs: dict[str, Environment], rendered: Sequence[Rendered] = ()
) -> list[Finding]:
    """All three checks: the cards, every overlay's pins against them, and the model images
    every rendered server pulls (of the overlays in ``rendered``)."""
    out, valid = card_findings(root)
    return out + pin_findings(root, overlay_dirs, envs, valid) + image_findings(rendered, valid)
