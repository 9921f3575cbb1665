"""Model cards: ``registry/<model>/<version>.yaml``, the reviewed record of one published version.

A card is built from the version directory (its ``metadata.json`` and the sha256 of every file,
:mod:`services.artifacts`) and, where ``platform.yaml`` names ``modelArtifacts.repository``, the
OCI image the files package into (:mod:`services.model_image`), so the same directory always
gives the same card, byte for byte, wherever the model store is mounted. It is checked by
``model-card.schema.json`` through the input layer (:mod:`generator.inputs`), plus what a schema
cannot say: the card sits at the path its model and version name, and its ``digest`` is the
digest of its ``files`` (``services.artifacts.version_digest``), so a hand-edited digest or file
list is caught without the model store. A card is never rewritten: a new training is a new
version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from referencing import Registry, Resource

from generator.conventions import REGISTRY_DIR, card_path
from generator.inputs import InputError, document_problems, load_yaml, read_text, strict_validator
from generator.registry.next_version import is_version_name
from services import artifacts

HERE = Path(__file__).resolve().parent.parent
SCHEMA_PATH = HERE / "model-card.schema.json"
METADATA_FILE = "metadata.json"
HEADER = (
    "# Model card, written by `make register` from the version directory; never rewritten (a new\n"
    "# training is a new version). Fields and the digest: registry/README.md.\n"
)
#: metadata.json (what the trainer writes, snake_case) -> card field (camelCase, as platform.yaml).
METRICS = {
    "holdoutAccuracy": "holdout_accuracy",
    "holdoutLoss": "holdout_loss",
    "holdoutExamples": "holdout_examples",
    "trainAccuracy": "train_accuracy",
    "trainExamples": "train_examples",
    "tfliteMaxAbsDiff": "tflite_max_abs_diff",
}
TRAINING = {"workers": "workers", "epochs": "epochs", "batchSize": "batch_size", "learningRate": "learning_rate"}


class CardError(Exception):
    """A card, or the version directory a card is built from, is unusable; one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Card:
    """A checked model card."""

    path: str  # repository-relative
    data: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.data["model"])

    @property
    def version(self) -> int:
        return int(self.data["version"])

    @property
    def digest(self) -> str:
        return str(self.data["digest"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.data["metrics"])

    @property
    def artifact(self) -> tuple[str, str] | None:
        """(repository, digest) of the version's model image, or None for a card registered
        before model images (such a version cannot be served where servers pull images)."""
        artifact = self.data.get("artifact")
        return (str(artifact["repository"]), str(artifact["digest"])) if artifact else None

    @property
    def image(self) -> str:
        """The model image reference a server pulls for this version, ``repository@digest`` ("" for
        a card registered before model images)."""
        return "@".join(self.artifact) if self.artifact else ""

    def mismatch(self, digest: str, image: str | None = None) -> str:
        """Which part of a pin of this version is not this card's: "digest" (``MODEL_DIGEST``),
        "image" (the model image its servers pull; None: they pull none), or "" when the pin is
        this card. The one check ``make validate``, ``make status`` and the release commands use."""
        if digest != self.digest:
            return "digest"
        if image is not None and image != self.image:
            return "image"
        return ""

    def pin_problem(self, digest: str, image: str | None = None) -> str:
        """Why a pin of this version (its digest and model image, as ``mismatch`` takes them) is not
        this card, in one sentence; "" when it is."""
        what = self.mismatch(digest, image)
        if what == "digest":
            return (
                f"{self.model} v{self.version} is pinned with digest {digest or '(none)'}, "
                f"but its card {self.path} has {self.digest}"
            )
        if what == "image":
            return (
                f"{self.model} v{self.version} is served from the model image {image}, "
                f"but its card {self.path} records {self.image or 'no model image'}"
            )
        return ""

    def headline(self) -> str:
        """The card's headline metric, as ``make status`` shows it: ``acc 0.9812``."""
        return f"acc {self.data['metrics']['holdoutAccuracy']:.4f}"


@cache
def _validator() -> Any:
    schemas = [json.loads((HERE / name).read_text()) for name in ("platform.schema.json", "release-files.schema.json")]
    card = json.loads(SCHEMA_PATH.read_text())
    registry: Registry = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in (*schemas, card)])
    return strict_validator(card, registry=registry)


def data_problems(data: Any, path: str) -> list[tuple[str, str]]:
    """Every problem of parsed card ``data`` that sits at repository path ``path``, as (field, message)."""
    problems = document_problems(_validator(), data)
    if problems:
        return problems
    expected = card_path(data["model"], data["version"])
    if path != expected:
        problems.append(
            ("(top level)", f"holds {data['model']} version {data['version']}, so it belongs at {expected}")
        )
    derived = artifacts.version_digest(data["files"])
    if derived != data["digest"]:
        problems.append(("digest", f"{data['digest']} is not the digest of the card's files ({derived})"))
    return problems


def read_card(root: Path, model: str, version: str | int) -> Card:
    """The card of ``model`` ``version`` under ``root``, checked; CardError naming the file else."""
    rel = card_path(model, version)
    if not (root / rel).exists():
        raise CardError([f"{rel}: no such card: {model} version {version} is not registered (make register)"])
    return read_card_file(root, rel)


def read_card_file(root: Path, rel: str) -> Card:
    """The card at repository path ``rel``, checked (see ``data_problems``)."""
    try:
        data = load_yaml(read_text(root / rel, rel), rel)
    except InputError as exc:
        raise CardError(exc.problems) from exc
    problems = data_problems(data, rel)
    if problems:
        raise CardError([f"{rel}: {where}: {message}" for where, message in problems])
    return Card(rel, data)


def registered_versions(root: Path, model: str) -> list[int]:
    """The versions of ``model`` that have a card file, ascending."""
    directory = root / REGISTRY_DIR / model
    if not directory.is_dir():
        return []
    return sorted(int(p.stem) for p in directory.glob("*.yaml") if is_version_name(p.stem))


def all_card_files(root: Path) -> list[str]:
    """Every ``registry/<model>/*.yaml`` path (repository-relative), sorted."""
    base = root / REGISTRY_DIR
    return sorted(p.relative_to(root).as_posix() for p in base.glob("*/*.yaml")) if base.is_dir() else []


def stray_files(root: Path) -> list[str]:
    """Files under ``registry/`` that are neither a card file (``<model>/<name>.yaml``) nor the
    top-level README: a ``.yml``, a nested directory's file, a card put one level too high."""
    base = root / REGISTRY_DIR
    if not base.is_dir():
        return []
    cards = set(all_card_files(root))
    found = (p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(rel for rel in found if rel not in cards and rel != f"{REGISTRY_DIR}/README.md")


# --- building a card from a version directory -------------------------------------------------------


def _metadata(version_dir: Path) -> dict[str, Any]:
    label = f"{version_dir}/{METADATA_FILE}"
    try:
        text = read_text(version_dir / METADATA_FILE, label)
    except InputError as exc:
        raise CardError(exc.problems) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CardError([f"{label}: not JSON ({exc.msg}, line {exc.lineno})"]) from exc
    if not isinstance(data, dict):
        raise CardError([f"{label}: must be a JSON object"])
    return data


def _section(meta: dict[str, Any], key: str) -> dict[str, Any]:
    """A mapping of metadata.json, or {} when it is absent or not a mapping (the schema then names it)."""
    value = meta.get(key)
    return value if isinstance(value, dict) else {}


def build_card(version_dir: Path, model: str, version: int, artifact: dict[str, str] | None = None) -> dict[str, Any]:
    """The card data of a published version directory: its metadata.json's card fields, the sha256
    of every file, the version digest and, when given, the OCI image it is packaged as
    (``{"repository", "digest"}``). CardError when the directory cannot make a valid card."""
    try:
        files = artifacts.file_digests(version_dir)
    except artifacts.ArtifactError as exc:
        raise CardError([str(exc)]) from exc
    meta = _metadata(version_dir)
    label = f"{version_dir}/{METADATA_FILE}"
    if (meta.get("name"), meta.get("version")) != (model, version):
        described = f"{meta.get('name')!r} version {meta.get('version')!r}"
        raise CardError([f"{label}: describes {described}, not {model!r} version {version}"])
    metrics, dataset, training = (_section(meta, key) for key in ("metrics", "dataset", "training"))
    card: dict[str, Any] = {
        "model": model,
        "version": version,
        "digest": artifacts.version_digest(files),
        "created": meta.get("created"),
        "metrics": {key: metrics[source] for key, source in METRICS.items() if source in metrics},
        "dataset": {"source": dataset.get("source"), "sha256": dataset.get("sha256")},
        "training": {
            "seed": meta.get("seed"),
            **{key: training[source] for key, source in TRAINING.items() if source in training},
        },
        **({"artifact": artifact} if artifact else {}),
        "codeRevision": meta.get("code_revision"),
        # Written by trainers that know their image (the training Job sets TRAINER_IMAGE); a local
        # `make train`, or an older trainer, records none: the card says null, never a guess.
        "trainerImage": meta.get("trainer_image"),
        "files": files,
    }
    problems = document_problems(_validator(), card)
    if problems:
        raise CardError([f"{label}: cannot make a card: {where}: {message}" for where, message in problems])
    return card


def render_card(card: dict[str, Any]) -> str:
    """The card as YAML text: a header, then the fields in the schema's order (stable diffs)."""
    body = yaml.safe_dump(card, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    return HEADER + body
