"""What the cluster stores back: fields git sets that the API server or Argo CD drops on write.

A field that git sets but the stored object lacks keeps the Application OutOfSync forever (and
``kubectl diff --server-side`` never empty), the churn the e2e suite once found as a NetworkPolicy
with ``egress: []``. Both writers serialize through Go types whose optional fields carry
``omitempty``; a field the schema marks ``required`` has none, so it is kept:

- the API server, for built-in kinds, drops null, an empty list and an empty map (``labels: {}``); an
  empty struct (``emptyDir: {}``) is kept. Zero scalars are left alone: Kubernetes declares a
  field a pointer where zero means something (``replicas: 0``, ``runAsNonRoot: false``) and the
  JSON schemas do not say which fields are not (``minReadySeconds: 0`` is dropped); ``make e2e``
  compares every field with what the server stored;
- Argo CD's controller, which writes Applications and AppProjects back through its own Go types,
  also drops ``false``, ``0`` and ``""`` (argo-cd #15898, #14666);
- other custom resources are stored as the JSON they are, so nothing is dropped.

The schemas are the ones ``schemas.SchemaStore`` validates against; this walks them alongside
the object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from generator.validate.model import Finding, Resource
from generator.validate.schemas import SchemaStore

CHECKS = {
    "server-drops": "no field holds an empty value the API server (or Argo CD) drops when it stores the object",
}
#: Kinds that Argo CD's controller writes back through its Go types.
ARGO_CD_KINDS = {("argoproj.io", "Application"), ("argoproj.io", "AppProject")}


def _zero(value: Any, schema: dict, scalars: bool) -> bool:
    """Whether Go's ``omitempty`` drops ``value``: null, an empty list or map; with ``scalars``,
    also ``false``, ``0`` and ``""``. An empty struct (a schema with properties) is kept."""
    if value is None:
        return True
    if isinstance(value, list):
        return not value
    if isinstance(value, dict):
        return not value and "properties" not in schema
    if not scalars:
        return False
    return value is False or value == "" or (isinstance(value, int | float) and value == 0)


def _resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/$defs/", 1)[-1], {})
    return schema


def dropped(value: Any, schema: dict, defs: dict, scalars: bool, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every field a writer drops, walking ``value`` alongside its schema
    (``$ref`` names resolved in ``defs``); ``scalars`` for Argo CD's controller (module doc)."""
    schema = _resolve(schema, defs)
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is None:
            return  # a map: every entry is kept as it is
        required = set(schema.get("required") or ())
        for key, child in value.items():
            child_schema = _resolve(properties.get(key, {}), defs)
            if key not in required and _zero(child, child_schema, scalars):
                yield (*path, key), child
            else:
                yield from dropped(child, child_schema, defs, scalars, (*path, key))
    elif isinstance(value, list):
        items = schema.get("items")
        for index, item in enumerate(value):
            yield from dropped(item, items if isinstance(items, dict) else {}, defs, scalars, (*path, index))


def check(store: SchemaStore, res: Resource) -> list[Finding]:
    """Every field of ``res`` that the cluster would not store as git says (see the module doc)."""
    loaded = store.schema(res.api_version, res.kind)
    if loaded is None:
        return []  # no schema: the schema check reports that
    schema, defs, built_in = loaded
    argo_cd = (res.group, res.kind) in ARGO_CD_KINDS
    if not built_in and not argo_cd:
        return []
    writer = "Argo CD" if argo_cd else "the API server"
    return [
        res.finding(
            path,
            f"{value!r} is dropped when {writer} stores the object: git and the cluster would differ "
            "forever (OutOfSync); leave the field out",
            "server-drops",
        )
        for path, value in dropped(res.doc, schema, defs, scalars=argo_cd)
    ]
