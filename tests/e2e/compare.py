"""How what the server stores compares with what git says, and with what Argo CD writes back."""

from __future__ import annotations

from argosync import FIELD_MANAGER

MISSING = "<missing>"


def ref(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def rewrites(git, live, path=()):
    """Every place where the live object does not say what git says: (path, git, live). Fields
    the server adds (defaults, status) are not rewrites; dropped fields and changed values are."""
    if isinstance(git, dict):
        if not isinstance(live, dict):
            yield path, git, live
            return
        for key, value in git.items():
            if key in live:
                yield from rewrites(value, live[key], (*path, key))
            else:
                yield (*path, key), value, MISSING
    elif isinstance(git, list):
        if not isinstance(live, list) or len(live) != len(git):
            yield path, git, live
            return
        for index, (item, live_item) in enumerate(zip(git, live, strict=True)):
            yield from rewrites(item, live_item, (*path, index))
    elif git != live:
        yield path, git, live


def manager_entry(obj: dict) -> list[dict]:
    """The managedFields entries of Argo CD's field manager (its apply time and field set)."""
    return [m for m in obj["metadata"].get("managedFields") or [] if m.get("manager") == FIELD_MANAGER]


def _is_go_zero(value, schema: dict) -> bool:
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str | list):
        return len(value) == 0
    if isinstance(value, dict):
        return not value and "properties" not in schema  # an empty map; an empty struct is kept
    return value is None


def dropped_by_go_types(value, schema: dict, path=()):
    """Fields that hold their Go zero value (false, 0, "", [], an empty map) but are not
    ``required`` by the CRD's schema. controller-gen marks exactly the fields without
    ``omitempty`` as required, so these are the ones a controller writing the object through its
    Go types (Argo CD's, for Applications and AppProjects) drops: git and the cluster then differ
    forever, and an app-of-apps that manages the object never reports Synced (argo-cd #15898,
    #14666). Yields (path, value)."""
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is None:
            return  # a map: Go keeps every entry
        required = set(schema.get("required") or ())
        for key, child in value.items():
            child_schema = properties.get(key, {})
            if key not in required and _is_go_zero(child, child_schema):
                yield (*path, key), child
            else:
                yield from dropped_by_go_types(child, child_schema, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from dropped_by_go_types(item, schema.get("items") or {}, (*path, index))
