"""The release files of an environment overlay: ``kustomization.yaml``, ``release.yaml``,
``active-slot.yaml`` and ``traffic.yaml``, the hand-edited state the release commands change.

Their shape is ``release-files.schema.json`` (one ``$defs`` entry per file name; it shares the
image and name definitions of ``platform.schema.json``); this module adds what a schema cannot
say (weights that sum to 100, two Services on different slots, no version pinned twice).
``make validate`` checks every overlay with it, and every release command checks the files it
is about to edit, so a file of the wrong shape is one line naming the file and the field, and
never a traceback or a value promoted onwards as garbage.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from referencing import Registry, Resource

from generator.inputs import InputError, Problem, document_problems, load_yaml_stream, read_text, strict_validator
from generator.strategy import BLUE_GREEN, CANARY, RELEASE_FILES

HERE = Path(__file__).resolve().parent
SCHEMA_PATH = HERE / "release-files.schema.json"
PLATFORM_SCHEMA_PATH = HERE / "platform.schema.json"
#: The files a release lives in (each strategy owns some); each may hold several documents
#: except kustomization.yaml.
FILES = RELEASE_FILES
#: Fields of a kustomization where a newline is text: inline patches.
KUSTOMIZATION_TEXT = frozenset({"patches[*].patch"})


@cache
def _validator(name: str) -> Any:
    schema = json.loads(SCHEMA_PATH.read_text())
    platform = json.loads(PLATFORM_SCHEMA_PATH.read_text())
    registry: Registry = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in (schema, platform)])
    return strict_validator({**schema, "$ref": f"#/$defs/{name}"}, registry=registry)


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
            if len(numbers) == 2 and sum(numbers) != 100:
                problems.append((f"[{index}].spec", f"{' + '.join(CANARY.variants)} must be 100, not {sum(numbers)}"))
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
