"""Strict JSON-schema validation of rendered resources (what kubeconform -strict does, in Python).

Kubernetes kinds: the strict schemas that the pinned ``kubernetes-validate`` package ships for
each Kubernetes minor version. CRD kinds: the converted schemas under ``crds/schemas`` (see
``crd_schemas.py``). A kind with neither is an error, never a skip.

Speed: ``kubernetes_validate.validate`` re-reads and re-parses the 1 MB definitions file on every
call. Here the definitions are loaded once per store and one compiled validator is kept per
(apiVersion, kind).

Two upstream gaps are closed while loading the definitions:
- ``Quantity`` accepts any string upstream; here it must match the API server's quantity
  grammar, so ``memory: lots`` is an error;
- ``Quantity`` and ``IntOrString`` use ``oneOf`` with ``null`` in both branches, which rejects
  an explicit null; ``anyOf`` says what was meant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry
from referencing import Resource as RefResource

from generator.conventions import KUBERNETES_VERSION
from generator.inputs import strict_class
from generator.validate.kube import as_list
from generator.validate.model import fmt_path

K8S_SCHEMA_ROOT = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"
CRD_SCHEMA_DIR = Path(__file__).resolve().parent / "crds" / "schemas"
QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING_DEF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
# The API server's resource.Quantity grammar (apimachinery/pkg/api/resource/quantity.go).
QUANTITY_PATTERN = (
    r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?$"
)
QUANTITY_RE = re.compile(QUANTITY_PATTERN)
DEFAULT_K8S_VERSION = KUBERNETES_VERSION
#: Custom resources the repository generates although no registry package carries a schema for
#: their CRD: (group, kind) -> why. Such an object is not schema-checked, and every run says so
#: in a note naming it (never a silent skip); its fields are held by the generator's tests.
WITHOUT_SCHEMA = {
    ("policy.sigstore.dev", "ClusterImagePolicy"): "no registry package carries the sigstore policy-controller "
    "CRD (the optional signature policy; tests/admission checks its fields)",
}


def without_schema(api_version: object, kind: object) -> str | None:
    """Why a kind of ``WITHOUT_SCHEMA`` has no schema; None for every other kind."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    return WITHOUT_SCHEMA.get((api_version.rpartition("/")[0], kind))


class SchemaError(Exception):
    """Usage error: an unsupported Kubernetes version or a broken schema directory."""


def supported_versions() -> list[str]:
    found = []
    for entry in K8S_SCHEMA_ROOT.iterdir():
        match = re.match(r"^v(\d+)\.(\d+)\.\d+-local-strict$", entry.name)
        if match:
            found.append((int(match[1]), int(match[2])))
    return [f"{a}.{b}" for a, b in sorted(found)]


def k8s_schema_dir(version: str) -> Path:
    """Directory of strict schemas for a Kubernetes version such as ``1.33`` or ``v1.33.0``."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.\d+)?$", version.strip())
    if not match:
        raise SchemaError(f"invalid Kubernetes version {version!r} (expected e.g. 1.33 or 1.33.0)")
    path = K8S_SCHEMA_ROOT / f"v{match[1]}.{match[2]}.0-local-strict"
    if not path.is_dir():
        raise SchemaError(
            f"no schemas for Kubernetes {match[1]}.{match[2]}; supported: {', '.join(supported_versions())}"
        )
    return path


def _k8s_file_name(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    prefix = group.split(".")[0] + "-" if group else ""
    return f"{kind.lower()}-{prefix}{version}.json"


def _tighten_definitions(defs: dict) -> None:
    defs[QUANTITY_DEF] = {
        "x-gitops-type": "quantity",
        "anyOf": [{"type": "string", "pattern": QUANTITY_PATTERN}, {"type": "number"}, {"type": "null"}],
    }
    defs[INT_OR_STRING_DEF] = {
        "x-gitops-type": "int-or-string",
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}],
    }


@lru_cache(maxsize=8)
def _definitions(schema_dir: Path) -> dict:
    definitions = json.loads((schema_dir / "_definitions.json").read_text())
    _tighten_definitions(definitions["$defs"])
    return definitions


@lru_cache(maxsize=8)
def _registry(schema_dir: Path) -> Registry:
    return RefResource.from_contents(_definitions(schema_dir)) @ Registry()


class SchemaStore:
    """Compiled validators for one Kubernetes version, built on first use and kept."""

    def __init__(self, kubernetes_version: str = DEFAULT_K8S_VERSION, crd_dir: Path = CRD_SCHEMA_DIR):
        self.kubernetes_version = kubernetes_version
        self.schema_dir = k8s_schema_dir(kubernetes_version)
        self.crd_dir = crd_dir
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator | None] = {}
        self._schemas: dict[tuple[str, str], tuple[dict, bool] | None] = {}

    def _load_schema(self, api_version: str, kind: str) -> tuple[dict, bool] | None:
        key = (api_version, kind)
        if key not in self._schemas:
            self._schemas[key] = self._read_schema(api_version, kind)
        return self._schemas[key]

    def _read_schema(self, api_version: str, kind: str) -> tuple[dict, bool] | None:
        group, _, version = api_version.rpartition("/")
        k8s_file = self.schema_dir / _k8s_file_name(api_version, kind)
        if k8s_file.is_file():
            schema = json.loads(k8s_file.read_text())
            gvks = schema.get("x-kubernetes-group-version-kind", [])
            if {"group": group, "version": version, "kind": kind} in gvks:
                return schema, True
        crd_file = self.crd_dir / group / f"{kind.lower()}_{version}.json"
        if group and crd_file.is_file():
            return json.loads(crd_file.read_text()), False
        return None

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        key = (api_version, kind)
        if key not in self._validators:
            loaded = self._load_schema(api_version, kind)
            if loaded is None:
                self._validators[key] = None
            else:
                schema, is_k8s = loaded
                registry = _registry(self.schema_dir) if is_k8s else Registry()
                cls = strict_class(jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator))
                self._validators[key] = cls(schema, registry=registry)
        return self._validators[key]

    def schema(self, api_version: str, kind: str) -> tuple[dict, dict, bool] | None:
        """The schema of a kind, the definitions its ``$ref`` names resolve in, and whether the kind
        is built into Kubernetes (not a CRD); None when there is none."""
        loaded = self._load_schema(api_version, kind)
        if loaded is None:
            return None
        schema, is_k8s = loaded
        defs = _definitions(self.schema_dir)["$defs"] if is_k8s else schema.get("$defs", {})
        return schema, defs, is_k8s

    def known_versions(self, kind: str) -> tuple[list[str], list[str]]:
        """apiVersions with a schema for this kind: (served by this Kubernetes, converted CRDs);
        for 'use X instead' hints."""
        served = []
        for path in sorted(self.schema_dir.glob(f"{kind.lower()}-*.json")):
            gvks = json.loads(path.read_text()).get("x-kubernetes-group-version-kind", [])
            served += [
                f"{g['group']}/{g['version']}" if g["group"] else g["version"] for g in gvks if g.get("kind") == kind
            ]
        crds = [
            f"{p.parent.name}/{p.stem.split('_')[-1]}" for p in sorted(self.crd_dir.glob(f"*/{kind.lower()}_*.json"))
        ]
        return sorted(set(served)), crds

    def errors(self, doc: dict) -> list[tuple[str, str]] | None:
        """Return (field path, message) for every violation, or None if the kind has no schema."""
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None
        validator = self.validator(api_version, kind)
        if validator is None:
            return None
        out: list[tuple[str, str]] = []
        for error in validator.iter_errors(doc):
            out.extend(describe(error))
        return sorted(set(out))


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """Turn one jsonschema error into precise (path, message) pairs."""
    path = list(error.absolute_path)
    instance, keyword = error.instance, error.validator
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extras = [k for k in instance if k not in known and not any(p.search(str(k)) for p in patterns)]
        if extras:
            return [(fmt_path(path + [k]), f"unknown field {k!r}") for k in extras]
    if keyword == "required":
        missing = error.message.split(" is a required property")[0].strip("'\"")
        return [(fmt_path(path + [missing]), "required field is missing")]
    if keyword == "type":
        expected = schema.get("type")
        expected = " or ".join(t for t in expected if t != "null") if isinstance(expected, list) else expected
        return [(fmt_path(path), f"expected {expected}, got {_type_name(instance)} {_short(instance)}")]
    if keyword in ("anyOf", "oneOf"):
        marker = schema.get("x-gitops-type")
        if marker == "quantity":
            return [(fmt_path(path), f"invalid quantity {_short(instance)} (e.g. 500m, 1.5, 256Mi, 2Gi)")]
        if marker == "int-or-string":
            return [(fmt_path(path), f"expected integer or string, got {_type_name(instance)} {_short(instance)}")]
        if isinstance(schema.get(keyword), list) and all(
            isinstance(s, dict) and set(s) <= {"type", "format"} for s in schema[keyword]
        ):
            types = " or ".join(str(s.get("type")) for s in schema[keyword])
            return [(fmt_path(path), f"expected {types}, got {_type_name(instance)} {_short(instance)}")]
        branches = as_list(schema.get(keyword))
        if instance is not None:  # "X or null": explain why it is not a valid X
            live = [i for i, s in enumerate(branches) if not (isinstance(s, dict) and s.get("type") == "null")]
            if len(live) == 1:
                inner = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == live[0]]
                if inner:
                    return sorted({item for e in inner for item in describe(e)})
        best = jsonschema.exceptions.best_match(error.context) if error.context else None
        if best is not None:
            return describe(best)
    if keyword == "enum":
        return [(fmt_path(path), f"{_short(instance)} is not one of {_short(schema.get('enum'))}")]
    if keyword == "pattern":
        return [(fmt_path(path), f"{_short(instance)} does not match {schema.get('pattern')}")]
    return [(fmt_path(path), error.message if len(error.message) < 200 else error.message[:197] + "...")]


def quantity_ok(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        or (isinstance(value, str) and bool(QUANTITY_RE.fullmatch(value)))
    )
