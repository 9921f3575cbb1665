"""The one input layer for the files people edit (platform.yaml, the release files of the
overlays): read them safely, parse them strictly and check them against a JSON Schema with the
semantics its other readers (editors, kustomize, the API server) give it.

What every file gets by going through here, so that a new field is protected by being declared:

- only a regular file is read (a FIFO or a device would hang or stream forever), at most
  ``MAX_BYTES``, and it must be UTF-8: each refusal is one line naming the file;
- YAML with duplicate keys, with aliases (``*name``: a value that holds itself, or a billion
  expanded values), or nested more than ``MAX_DEPTH`` deep, is refused;
- a schema ``pattern`` matches the whole string the way ECMA-262 and Go (RE2) read it: Python's
  ``$`` also matches before a trailing newline, so ``"250m\\n"`` would pass ``^...$`` here and
  fail everywhere else;
- no string, key included, holds a control character (a newline in a name or tag becomes a
  broken file name, label or image reference downstream), outside the free-text fields a
  caller names;
- no number is NaN or infinite (every comparison with NaN is false, so no bound catches it), and
  an ``integer`` is an int, never a float such as ``2.0`` (which Go's JSON decoding refuses).

Problems are ``(path, message)`` pairs, ``path`` written ``a.b[0].c``; callers prefix the file.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from services.values import shown  # one way to quote a bad value, for the services too

MAX_BYTES = 1 << 20  # 1 MiB: far above any real platform.yaml or release file
MAX_DEPTH = 64
#: C0 controls and DEL. Tab is allowed: YAML and people use it inside free text.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Problem = tuple[str, str]


class InputError(Exception):
    """A file could not be read or parsed; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def dotted(path: Iterator[object] | list | tuple) -> str:
    """``["serving", "ports", 0]`` as ``serving.ports[0]``; ``(top level)`` for the root."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_text(path: Path, label: str) -> str:
    """The content of a regular, UTF-8 file of at most MAX_BYTES; InputError naming ``label`` else."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError([f"{label}: cannot read: {exc.strerror}"]) from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError([f"{label}: not a regular file (a FIFO, device or directory is never read)"])
    if info.st_size > MAX_BYTES:
        raise InputError([f"{label}: {info.st_size} bytes, more than the {MAX_BYTES} a file here may have"])
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError([f"{label}: cannot read: {exc.strerror}"]) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            [f"{label}: line {line}: not UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start})"]
        ) from exc


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys instead of keeping the last one, and
    aliases: ``a: &a [*a]`` is a structure that holds itself (every walk over it loops forever),
    and nine lines of aliases of aliases expand to a billion values."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"alias *{event.anchor}: aliases are not accepted here; write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key (a list): the constructor below says so
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {shown(key)} (first on line {first + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _depth(data: Any) -> int:
    """How deeply ``data`` nests (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def load_yaml(text: str, label: str) -> Any:
    """One YAML document (None when empty), parsed strictly; InputError with the line and column
    on a problem."""
    docs = load_yaml_stream(text, label)
    if len(docs) > 1:
        raise InputError([f"{label}: holds {len(docs)} YAML documents; one is expected"])
    return docs[0] if docs else None


def load_yaml_stream(text: str, label: str) -> list[Any]:
    """Every document of a YAML stream (empty ones dropped), parsed as ``load_yaml`` parses one."""
    try:
        docs = [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(parse)"
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise InputError([f"{label}: {where}: {problem}"]) from exc
    except RecursionError as exc:
        raise InputError([f"{label}: nested more than {MAX_DEPTH} levels deep"]) from exc
    if any(_depth(doc) > MAX_DEPTH for doc in docs):
        raise InputError([f"{label}: nested more than {MAX_DEPTH} levels deep"])
    return docs


def ecma_pattern(pattern: str) -> str:
    """``pattern`` rewritten for Python's ``re`` so that it means what it means in ECMA-262 and
    RE2: every unescaped ``$`` outside a character class becomes ``\\Z`` (end of the string only)."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":  # "[]...]": a leading "]" is a literal member
                out.append("[]")
                i += 2
                continue
        elif char == "$":
            char = r"\Z"
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(ecma_pattern(pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError(f"{shown(instance)} does not match {pattern!r}")


@lru_cache(maxsize=8)
def strict_class(base: Any) -> Any:
    """``base`` (a jsonschema validator class) with ECMA-262 ``pattern`` semantics, and integers
    that are ints: never a float such as 2.0 or 1e30, which Go's JSON decoding (kustomize, the API
    server) refuses where the API declares an integer."""
    types = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(base, {"pattern": _pattern}, type_checker=types)


def strict_validator(
    schema: dict, format_checks: dict[str, Callable[[object], bool]] | None = None, registry: Any = None
) -> Any:
    """A validator for ``schema`` (its own draft) with ECMA-262 ``pattern`` semantics and, for
    each ``format`` named in ``format_checks``, that check (formats are asserted, not annotations)."""
    base = jsonschema.validators.validator_for(schema)
    base.check_schema(schema)
    cls = strict_class(base)
    checker = jsonschema.FormatChecker()
    for name, check in (format_checks or {}).items():
        checker.checks(name)(check)
    if registry is not None:
        return cls(schema, format_checker=checker, registry=registry)
    return cls(schema, format_checker=checker)


def _free_text_matcher(paths: frozenset[str]) -> re.Pattern[str] | None:
    if not paths:
        return None
    alternatives = (re.escape(path).replace(r"\[\*\]", r"\[\d+\]") for path in sorted(paths))
    return re.compile("|".join(alternatives))


def value_problems(data: Any, free_text: frozenset[str] = frozenset()) -> list[Problem]:
    """Control characters in any string or key (except at the ``free_text`` paths, dotted, ``[*]``
    for any index, where newlines are text) and NaN or infinite numbers, anywhere in ``data``."""
    text = _free_text_matcher(free_text)
    problems: list[Problem] = []
    stack: list[tuple[Any, list]] = [(data, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and CONTROL.search(key):
                    problems.append((dotted(path), f"key {shown(key)} holds a control character"))
                stack.append((value, [*path, key]))
        elif isinstance(node, list):
            stack.extend((item, [*path, index]) for index, item in enumerate(node))
        elif isinstance(node, str):
            is_text = text is not None and text.fullmatch(dotted(path)) is not None
            bad = CONTROL.search(node.replace("\n", "") if is_text else node)
            if bad:
                problems.append((dotted(path), f"{shown(node)} holds a control character ({bad.group()!r})"))
        elif isinstance(node, float) and not math.isfinite(node):
            problems.append((dotted(path), f"{node} is not a number a setting can have"))
    return sorted(problems)


def describe(error: jsonschema.ValidationError) -> list[Problem]:
    """One schema error as (path, message) pairs a person can act on: one per problem."""
    path = list(error.absolute_path)
    schema: Any = error.schema if isinstance(error.schema, dict) else {}
    kind, value = error.validator, error.validator_value
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed), key=str)
        return [(dotted([*path, key]), f"unknown key (allowed: {', '.join(allowed)})") for key in unknown]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return [(dotted([*path, missing]), "is required")]
    if kind == "pattern":
        return [(dotted(path), f"{shown(error.instance)} is not valid (must match {value})")]
    if kind == "enum":
        return [(dotted(path), f"{shown(error.instance)} is not one of {', '.join(map(str, schema.get('enum', [])))}")]
    if kind == "const":
        return [(dotted(path), f"{shown(error.instance)} must be {value!r}")]
    if kind == "type":
        return [(dotted(path), f"{shown(error.instance)} is not of type {value!r}")]
    if kind in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
        word = {"maximum": "<=", "minimum": ">=", "exclusiveMaximum": "<", "exclusiveMinimum": ">"}[kind]
        return [(dotted(path), f"{shown(error.instance)} must be {word} {value}")]
    if kind == "not" and isinstance(value, dict) and set(value) == {"required"}:
        return [(dotted(path), f"give one of {' or '.join(value['required'])}, not both")]
    message = error.message
    return [(dotted(path), message if len(message) <= 200 else message[:197] + "...")]


def document_problems(
    validator: Any,
    data: Any,
    free_text: frozenset[str] = frozenset(),
    describe_error: Callable[[jsonschema.ValidationError], list[Problem]] = describe,
) -> list[Problem]:
    """Every problem of ``data``: its values (``value_problems``), then its schema errors. One line
    per problem: a value already reported, or of the wrong type, is not also reported as a
    pattern mismatch or out of bounds."""
    problems = value_problems(data, free_text)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    flagged = {where for where, _ in problems} | {
        dotted(list(e.absolute_path)) for e in errors if e.validator == "type"
    }
    problems += [
        problem
        for error in errors
        for problem in describe_error(error)
        if error.validator == "type" or problem[0] not in flagged
    ]
    return list(dict.fromkeys(problems))
