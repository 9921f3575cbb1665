"""The release state of one environment overlay at one commit, read from its release files' bytes.

What counts (docs/releases.md, "How a release is pinned"): per variant (the rolling release, a
blue-green slot or a canary track) the server image (tag or digest) and, per model, the pinned
version, its digest and its model image digest; the canary weights; the active blue-green slot.
Replicas and resources are not release state. The file names come from the release files'
models (``generator.release.files.FILES``), the object names from ``generator.conventions``.

Older history wrote the same facts in older shapes, and a hand edit may break a file; both are
read leniently (a fact that cannot be read is ``None``), so the whole history counts:
``MODEL_VERSION`` as a ``configMapGenerator`` literal in ``kustomization.yaml``, and the canary
weights as a Gateway ``HTTPRoute``'s ``backendRefs`` before ``CanaryWeights`` existed, and a
rolling overlay's model image entry named by its repository before ``<model>-model``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from generator.conventions import (
    CANARY_WEIGHTS_KIND,
    DIGEST_KEY,
    RELEASE_KEY,
    canary_weights_name,
    model_image_name,
    release_config_map_name,
    variant_image_name,
)
from generator.release.files import FILES
from generator.strategy import BLUE_GREEN, CANARY, Strategy

#: The release files read at each commit (every strategy's; a strategy reads those it owns).
RELEASE_FILES = FILES


@dataclass(frozen=True)
class ModelPin:
    """One model as a variant pins it: version, the version's digest, and its model image digest."""

    model: str
    version: str | None
    digest: str | None
    image_digest: str | None


@dataclass(frozen=True)
class VariantState:
    """What one variant runs: its server image reference (``repo:tag`` or ``repo@digest``) and models."""

    variant: str
    server: str | None
    models: tuple[ModelPin, ...]


@dataclass(frozen=True)
class ReleaseState:
    """The release state of an overlay: every variant's pins, the canary weights, the active slot."""

    variants: tuple[VariantState, ...]
    weights: tuple[tuple[str, int], ...] = ()  # canary: (track, summed weight over the models)
    active_slot: str | None = None

    def variant(self, name: str) -> VariantState:
        """The state of variant ``name`` ("" for a rolling overlay)."""
        return next(v for v in self.variants if v.variant == name)

    def share(self, variant: str) -> int | None:
        """The percent of production traffic ``variant`` takes (None when the files do not say)."""
        if self.weights:
            return dict(self.weights).get(variant)
        if self.active_slot is not None:
            return 100 if variant == self.active_slot else 0
        return 100 if variant == "" else None

    def pins(self) -> tuple[tuple[str, ...], ...]:
        """Every variant's pins without the traffic: what a release (not a traffic step) changes."""
        return tuple((v.variant, str(v.server), *(str(m) for m in v.models)) for v in self.variants)

    def changes_from(self, before: ReleaseState | None) -> list[str]:
        """What changed since ``before``, one short phrase per fact (for people and the CSV)."""
        if before is None:
            return ["created"]
        out = []
        for old, new in zip(before.variants, self.variants, strict=True):
            where = f"{new.variant} " if new.variant else ""
            if old.server != new.server:
                out.append(f"{where}server {_short(old.server)} -> {_short(new.server)}")
            for a, b in zip(old.models, new.models, strict=True):
                if a.version != b.version:
                    out.append(f"{where}{b.model} v{a.version} -> v{b.version}")
                elif a.digest != b.digest:
                    out.append(f"{where}{b.model} v{b.version} digest {_short(a.digest)} -> {_short(b.digest)}")
                elif a.image_digest != b.image_digest:
                    out.append(f"{where}{b.model} image {_short(a.image_digest)} -> {_short(b.image_digest)}")
        if before.weights != self.weights:
            old_w, new_w = dict(before.weights), dict(self.weights)
            out.append("weights " + ", ".join(f"{t} {old_w.get(t)} -> {new_w.get(t)}" for t in sorted(new_w)))
        if before.active_slot != self.active_slot:
            out.append(f"active slot {before.active_slot} -> {self.active_slot}")
        return out


def _short(reference: str | None) -> str:
    if reference is None:
        return "none"
    name = reference.rsplit("/", 1)[-1]
    if name.startswith("sha256:"):
        return name[:19]
    return name[: name.index("@") + 20] if "@" in name else name


def parse_documents(data: bytes) -> list[Any]:
    """The YAML documents of a release file, or [] when it is not YAML (a broken hand edit)."""
    try:
        return [doc for doc in yaml.load_all(data, Loader=yaml.CSafeLoader) if doc is not None]
    except yaml.YAMLError:
        return []


def _named(docs: Iterable[Any], kind: str, name: str) -> dict[str, Any] | None:
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == kind and (doc.get("metadata") or {}).get("name") == name:
            return doc
    return None


def _image_pins(kustomization: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    images = kustomization.get("images") or []
    return {i["name"]: i for i in images if isinstance(i, dict) and isinstance(i.get("name"), str)}


def _reference(pin: Mapping[str, Any] | None, repository: str) -> str | None:
    if pin is None:
        return None
    repo = pin.get("newName") or repository
    if pin.get("digest"):
        return f"{repo}@{pin['digest']}"
    return f"{repo}:{pin['newTag']}" if pin.get("newTag") is not None else None


def _legacy_version(kustomization: Mapping[str, Any], name: str) -> str | None:
    for generator in kustomization.get("configMapGenerator") or []:
        if isinstance(generator, dict) and generator.get("name") == name:
            for literal in generator.get("literals") or []:
                key, _, value = str(literal).partition("=")
                if key == RELEASE_KEY:
                    return value
    return None


def _weights(docs: list[Any], models: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    totals: dict[str, int] = {}
    for model in models:
        found = _named(docs, CANARY_WEIGHTS_KIND, canary_weights_name(model))
        if found is not None:
            for track in CANARY.variants:
                weight = (found.get("spec") or {}).get(track)
                if isinstance(weight, int):
                    totals[track] = totals.get(track, 0) + weight
            continue
        route = _named(docs, "HTTPRoute", canary_weights_name(model))  # before CanaryWeights
        for rule in ((route or {}).get("spec") or {}).get("rules") or []:
            for ref in (rule or {}).get("backendRefs") or []:
                track = str(ref.get("name", "")).rsplit("-", 1)[-1]
                if track in CANARY.variants and isinstance(ref.get("weight"), int):
                    totals[track] = totals.get(track, 0) + ref["weight"]
    share = len(models) or 1
    return tuple(sorted((track, total // share) for track, total in totals.items()))


def read_state(
    files: Mapping[str, list[Any]],
    strategy: Strategy,
    models: tuple[str, ...],
    server_repository: str,
    artifact_repository: str,
) -> ReleaseState | None:
    """The release state from an overlay's parsed release files (name -> documents; a file absent
    at that commit is missing from ``files``), or None when the overlay has no kustomization.
    ``artifact_repository`` is platform.yaml's ``modelArtifacts.repository``: older rolling
    overlays named their model image entry by its real repository, not ``<model>-model``."""
    kustomization_docs = files.get("kustomization.yaml")
    if not kustomization_docs or not isinstance(kustomization_docs[0], dict):
        return None
    kustomization = kustomization_docs[0]
    images = _image_pins(kustomization)
    release = files.get("release.yaml", [])
    variants = []
    for variant in strategy.released_variants:
        name = variant_image_name(server_repository, variant) if variant else server_repository
        server = _reference(images.get(name), server_repository)
        pins = []
        for model in models:
            config_map = release_config_map_name(model, variant)
            data = (_named(release, "ConfigMap", config_map) or {}).get("data") or {}
            version = data.get(RELEASE_KEY) or _legacy_version(kustomization, config_map)
            image = images.get(model_image_name(model, variant))
            if image is None and not variant:
                image = images.get(f"{artifact_repository}/{model}")
            image = image or {}
            pins.append(
                ModelPin(
                    model,
                    None if version is None else str(version),
                    data.get(DIGEST_KEY),
                    image.get("digest"),
                )
            )
        variants.append(VariantState(variant, server, tuple(pins)))
    weights: tuple[tuple[str, int], ...] = ()
    if strategy is CANARY:
        weights = _weights(files.get(CANARY.traffic_file, []), models)
    active = None
    if strategy is BLUE_GREEN:
        service = _named(files.get(BLUE_GREEN.traffic_file, []), "Service", f"{models[0]}-server") if models else None
        slot = ((service or {}).get("spec") or {}).get("selector", {}).get(BLUE_GREEN.variant_label)
        active = slot if isinstance(slot, str) else None
    return ReleaseState(tuple(variants), weights, active)


def files_for(strategy: Strategy) -> tuple[str, ...]:
    """The release files an overlay of ``strategy`` owns, in ``RELEASE_FILES`` order."""
    return tuple(name for name in RELEASE_FILES if name in strategy.release_files)
