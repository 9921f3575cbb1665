"""The release files of an environment overlay: ``kustomization.yaml``, ``release.yaml``,
``active-slot.yaml`` and ``traffic.yaml``, the hand-edited state the release commands change.

Their shape is declared here, one model per file, and ``make schema`` writes it as
``release-files.schema.json`` (one ``$defs`` entry per file name; the names, images and digests
follow the same rules as platform.yaml's, ``services/contract.py``). This module adds what a
schema cannot say (weights that sum to 100, two Services on different slots, no version pinned
twice). ``make validate`` checks every overlay with it, and every release command checks the
files it is about to edit, so a file of the wrong shape is one line naming the file and the
field, and never a traceback or a value promoted onwards as garbage.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from generator.config import INT32_MAX, ImageDigest, ImageRepository, ImageTag, Name
from generator.config import SCHEMA_PATH as PLATFORM_SCHEMA_PATH
from generator.inputs import InputError, Problem, document_problems, load_yaml_stream, read_text, strict_validator
from generator.model_schema import Definition, definitions_schema
from generator.strategy import BLUE_GREEN, CANARY, RELEASE_FILES
from services.contract import DIGEST, DNS_LABEL, DNS_LABEL_MAX, TOTAL_WEIGHT, whole

SCHEMA_PATH = PLATFORM_SCHEMA_PATH.with_name("release-files.schema.json")
#: Fields of a kustomization where a newline is text: inline patches.
KUSTOMIZATION_TEXT = frozenset({"patches[*].patch"})


# --- the files, declared ----------------------------------------------------------------------

ObjectName = Annotated[
    str, StringConstraints(pattern=whole(DNS_LABEL), max_length=DNS_LABEL_MAX), Definition("objectName")
]
ModelVersion = Annotated[
    str,
    StringConstraints(pattern="^[1-9][0-9]{0,8}$"),
    Definition(
        "modelVersion",
        "A published model version: a positive integer, written as a string (ConfigMap data is text)",
    ),
]
ModelDigest = Annotated[
    str,
    StringConstraints(pattern=whole(DIGEST)),
    Definition(
        "modelDigest",
        "The version's digest, copied from its model card: sha256 of the sha256sum manifest of the version "
        "directory (services/artifacts.py, registry/README.md)",
    ),
]
Weight = Annotated[int, Field(ge=0, le=TOTAL_WEIGHT), Definition("weight")]


class Closed(BaseModel):
    """A mapping of a release file whose every key is declared (keys as the file writes them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Open(BaseModel):
    """A mapping of which only the keys the release state lives in are declared; the rest is kustomize's."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ImagePin(Closed):
    """An `images:` entry: the image's name in the manifests, and the tag or digest it is pinned to."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["newTag", "digest"]}})

    name: ImageRepository
    new_name: ImageRepository | None = Field(None, alias="newName")
    new_tag: ImageTag | None = Field(None, alias="newTag")
    digest: ImageDigest | None = None


class ReplicaCount(Closed):
    """A `replicas:` entry: how many pods a blue-green slot or canary track runs."""

    name: ObjectName
    count: int = Field(ge=0, le=INT32_MAX)


class Patch(Open):
    """A `patches:` entry."""

    path: str | None = None
    patch: str | None = None


class Kustomization(Open):
    """An overlay's kustomization.yaml: its namespace, parts, image pins and replicas."""

    namespace: Name | None = None
    resources: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    images: tuple[ImagePin, ...] = ()
    replicas: tuple[ReplicaCount, ...] = ()
    patches: tuple[Patch, ...] = ()


class Metadata(Closed):
    """The object's name."""

    name: ObjectName


class ReleaseData(Closed):
    """The pinned model version, and its digest."""

    MODEL_VERSION: ModelVersion
    MODEL_DIGEST: ModelDigest | None = None


class Release(Closed):
    """The release ConfigMaps: the model version each environment (or slot, or track) trains and
    serves, and the digest of that version from its model card (registry/<model>/<version>.yaml)"""

    api_version: Literal["v1"] = Field(alias="apiVersion")
    kind: Literal["ConfigMap"]
    metadata: Metadata
    data: ReleaseData


class Selector(Closed):
    """The slot a Service selects."""

    slot: Literal["blue", "green"]


class SlotSpec(Closed):
    """The Service's selector."""

    selector: Selector


class ActiveSlot(Closed):
    """Which slot the production Service and the preview Service select (blue-green)"""

    api_version: Literal["v1"] = Field(alias="apiVersion")
    kind: Literal["Service"]
    metadata: Metadata
    spec: SlotSpec


class LocalConfig(Open):
    """Annotations: kustomize reads the object and never deploys it."""

    local_config: Literal["true"] = Field(alias="config.kubernetes.io/local-config")


class WeightsMetadata(Closed):
    """The weights' name and their local-config annotation."""

    name: ObjectName
    annotations: LocalConfig


class Weights(Closed):
    """Each track's share of the requests."""

    stable: Weight
    canary: Weight


class CanaryWeights(Closed):
    """The canary weights: kustomize reads them (local-config, never deployed) into both canary routes"""

    api_version: Literal["release.ml-gitops/v1"] = Field(alias="apiVersion")
    kind: Literal["CanaryWeights"]
    metadata: WeightsMetadata
    spec: Weights


#: Each release file's model, by file name.
MODELS: dict[str, type[BaseModel]] = {
    "kustomization.yaml": Kustomization,
    "release.yaml": Release,
    BLUE_GREEN.traffic_file: ActiveSlot,
    CANARY.traffic_file: CanaryWeights,
}
#: The files a release lives in (each strategy owns some: generator.strategy); each may hold
#: several documents except kustomization.yaml.
FILES = tuple(MODELS)
assert set(FILES) == set(RELEASE_FILES), "a strategy's release file has no model here"


def release_files_schema() -> dict[str, Any]:
    """release-files.schema.json, generated from the models above (``make schema`` writes it)."""
    return definitions_schema(
        MODELS,
        schema_id=SCHEMA_PATH.name,
        title="The hand-edited release files of an overlay (overlays/<env>/), as the release commands read and "
        "write them",
        description="Checked by make validate and by every release command before it edits. Only the fields the "
        "release state lives in are constrained; the rest of a kustomization is kustomize's.",
    )


# --- checking them ------------------------------------------------------------------------------


@cache
def _validator(name: str) -> Any:
    return strict_validator({**json.loads(SCHEMA_PATH.read_text()), "$ref": f"#/$defs/{name}"})


@cache
def _definition(name: str) -> Any:
    platform = json.loads(PLATFORM_SCHEMA_PATH.read_text())
    return strict_validator({"$schema": platform["$schema"], "$defs": platform["$defs"], "$ref": f"#/$defs/{name}"})


def definition_problem(name: str, value: object) -> str | None:
    """Why ``value`` is not a valid ``name`` of platform.schema.json's ``$defs`` (imageTag,
    imageDigest, ...), or None: command arguments are held to the same definitions as files."""
    problems = document_problems(_definition(name), value)
    return problems[0][1] if problems else None


def _semantic(name: str, docs: list[Any]) -> list[Problem]:
    problems: list[Problem] = []
    if name == CANARY.traffic_file:
        for index, doc in enumerate(docs):
            spec = doc.get("spec") if isinstance(doc, dict) else None
            weights = [spec.get(k) for k in CANARY.variants] if isinstance(spec, dict) else []
            numbers = [w for w in weights if isinstance(w, int)]
            if len(numbers) == 2 and sum(numbers) != TOTAL_WEIGHT:
                total = f"{' + '.join(CANARY.variants)} must be {TOTAL_WEIGHT}, not {sum(numbers)}"
                problems.append((f"[{index}].spec", total))
    if name != "kustomization.yaml":
        names = [((d.get("metadata") or {}).get("name") if isinstance(d, dict) else None) for d in docs]
        for index, item in enumerate(names):
            if item is not None and names.index(item) != index:
                problems.append((f"[{index}].metadata.name", f"{item!r} is written twice in this file"))
    if name == BLUE_GREEN.traffic_file:
        label = BLUE_GREEN.variant_label
        slots = [((d.get("spec") or {}).get("selector") or {}).get(label) for d in docs if isinstance(d, dict)]
        if len(slots) == 2 and slots[0] == slots[1]:
            problems.append((f"[1].spec.selector.{label}", f"both Services select {label} {slots[0]!r}"))
    return problems


def release_file_problems(name: str, docs: list[Any]) -> list[Problem]:
    """Every problem of the parsed documents of release file ``name``, as (path, message)."""
    if name == "kustomization.yaml":
        if len(docs) != 1:
            return [("(top level)", f"must be one YAML mapping, found {len(docs)} document(s)")]
        return document_problems(_validator(name), docs[0], KUSTOMIZATION_TEXT)
    problems: list[Problem] = []
    for index, doc in enumerate(docs):
        for path, message in document_problems(_validator(name), doc):
            problems.append((f"[{index}]" + ("" if path == "(top level)" else f".{path}"), message))
    return problems or _semantic(name, docs)


def read_release_file(path: Path, label: str) -> list[Any]:
    """The documents of a release file, read and parsed strictly (InputError naming ``label``)."""
    return load_yaml_stream(read_text(path, label), label)


def file_problems(path: Path, label: str) -> list[str]:
    """Every problem of one release file, as ``label: path: message`` lines ([] when it is fine)."""
    try:
        docs = read_release_file(path, label)
    except InputError as exc:
        return exc.problems
    return [f"{label}: {where}: {message}" for where, message in release_file_problems(path.name, docs)]


def overlay_problems(overlay_dir: Path, label: str) -> list[str]:
    """The problems of every release file present in an overlay directory."""
    return [
        line
        for name in FILES
        if (overlay_dir / name).exists()
        for line in file_problems(overlay_dir / name, f"{label}/{name}")
    ]
