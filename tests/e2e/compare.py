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
