"""CustomResourceDefinitions for the control plane, built from the schemas ``make validate`` uses.

``generator/validate/crds/schemas/<group>/<kind>_<version>.json`` are strict JSON schemas derived
from the upstream API types (see that directory's README). This module turns them back into
structural ``openAPIV3Schema``s, undoing each step of that conversion, so the API server
validates custom resources (strict field validation rejects unknown fields) as the upstream CRDs
would:

- every ``$ref`` to a definition is inlined (a CRD schema has no references); a definition that
  refers to itself becomes ``x-kubernetes-preserve-unknown-fields`` at the second level;
- ``const`` becomes a one-value ``enum`` (CRD schemas have no ``const``);
- ``type: [X, "null"]`` becomes ``type: X`` (the upstream CRDs are not nullable);
- ``additionalProperties: false`` goes (a structural schema prunes or, under strict field
  validation, rejects unknown fields anyway); an object with no properties and no value schema
  was ``x-kubernetes-preserve-unknown-fields`` upstream and becomes that again;
- string-or-integer (``anyOf``/``oneOf`` of the two, or ``type: [string, number]``) becomes
  ``x-kubernetes-int-or-string``;
- the inlined ``ObjectMeta`` becomes ``metadata: {type: object}``, all a CRD may say about it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from generator.conventions import resource_plural
from generator.paths import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "generator" / "validate" / "crds" / "schemas"
#: Groups under *.k8s.io / *.kubernetes.io need an API-review annotation; the upstream value.
API_APPROVED = {"gateway.networking.k8s.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"}
PROTECTED_GROUP_SUFFIXES = (".k8s.io", ".kubernetes.io")
_VERSION_RANK = {"": 3, "beta": 2, "alpha": 1}


def _int_or_string(node: dict) -> bool:
    if isinstance(node.get("type"), list):
        return set(node["type"]) - {"null"} in ({"integer", "string"}, {"number", "string"})
    branches = node.get("anyOf") or node.get("oneOf") or []
    types = set()
    for branch in branches:
        if branch.get("anyOf"):
            types |= {b.get("type") for b in branch["anyOf"]}
        else:
            types.add(branch.get("type"))
    return bool(branches) and types - {"null"} == {"integer", "string"}


def inline(node, defs: dict, seen: tuple[str, ...] = ()):
    """``node`` with every ``#/$defs/`` reference replaced by its definition (see the docstring)."""
    if isinstance(node, list):
        return [inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref[len("#/$defs/") :]
        if name in seen:
            return {"x-kubernetes-preserve-unknown-fields": True}
        return inline(defs[name], defs, (*seen, name))
    return {key: inline(value, defs, seen) for key, value in node.items() if key != "$defs"}


def structural(node):
    """One node of a strict JSON schema back as a structural CRD schema (see the docstring)."""
    if isinstance(node, list):
        return [structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "const" in node:
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    if _int_or_string(node):
        return {"x-kubernetes-int-or-string": True}
    out: dict = {}
    for key, value in node.items():
        if key in ("$comment", "$schema", "$defs", "x-kubernetes-group-version-kind"):
            continue
        if key == "type" and isinstance(value, list):
            value = [t for t in value if t != "null"]
            value = value[0] if len(value) == 1 else value
        if key == "additionalProperties" and isinstance(value, bool):
            continue
        if key == "properties":
            value = {name: structural(child) for name, child in value.items()}
        elif isinstance(value, (dict, list)):
            value = structural(value)
        out[key] = value
    if out.get("type") == "object" and not out.get("properties"):
        out.pop("properties", None)
        if "additionalProperties" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _top_level(schema: dict) -> dict:
    """The whole object: every property structural, ``metadata`` as a CRD must declare it."""
    schema = {**schema, "properties": {**schema["properties"], "metadata": {"type": "object"}}}
    schema = inline(schema, schema.get("$defs", {}))
    meta = {**schema, "properties": {**schema["properties"], "metadata": {"type": "object", "properties": {}}}}
    out = structural(meta)
    out["properties"]["metadata"] = {"type": "object"}
    return out


def _version_key(version: str) -> tuple[int, int, int]:
    """v1 > v1beta2 > v1beta1 > v1alpha1: the newest stable version is the storage version."""
    number, _, rest = version[1:].partition("beta") if "beta" in version else version[1:].partition("alpha")
    stage = "beta" if "beta" in version else "alpha" if "alpha" in version else ""
    return int(number), _VERSION_RANK[stage], int(rest or 0)


def schema_files(group: str, kind: str) -> dict[str, Path]:
    """version -> schema file of one kind, from the committed schema directory."""
    return {path.stem.rsplit("_", 1)[1]: path for path in sorted((SCHEMA_DIR / group).glob(f"{kind.lower()}_*.json"))}


def crd(group: str, kind: str) -> dict:
    """The CustomResourceDefinition of one namespaced kind, every committed version served."""
    files = schema_files(group, kind)
    if not files:
        raise LookupError(f"no schema for {kind}.{group} under {SCHEMA_DIR.relative_to(REPO_ROOT)}")
    storage = max(files, key=_version_key)
    name = f"{resource_plural(kind)}.{group}"
    metadata: dict = {"name": name}
    if group.endswith(PROTECTED_GROUP_SUFFIXES):
        approved = API_APPROVED.get(group, "unapproved, test-only copy of an upstream CRD")
        metadata["annotations"] = {"api-approved.kubernetes.io": approved}
    versions = [
        {
            "name": version,
            "served": True,
            "storage": version == storage,
            "schema": {"openAPIV3Schema": _top_level(json.loads(path.read_text()))},
        }
        for version, path in sorted(files.items(), key=lambda item: _version_key(item[0]), reverse=True)
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": resource_plural(kind),
                "singular": kind.lower(),
            },
            "versions": copy.deepcopy(versions),
        },
    }


def crds_for(objects: list[dict]) -> list[dict]:
    """The CRDs of every kind among ``objects`` that has a committed schema (built-in kinds have none)."""
    kinds = sorted({(o["apiVersion"].rpartition("/")[0], o["kind"]) for o in objects if "/" in o["apiVersion"]})
    return [crd(group, kind) for group, kind in kinds if schema_files(group, kind)]
