"""YAML loading that refuses what PyYAML silently accepts: duplicate mapping keys.

PyYAML keeps the last of two equal keys without a word; kustomize and the API server disagree
about which one wins. ``load_stream`` records every duplicate (with both line numbers) and keeps
going, so one run reports all of them.

A stream nested more than ``MAX_DEPTH`` levels deep (the input layer's limit) is an error, not a
crash: libyaml composes recursively in C, so tens of thousands of levels would overflow the stack
and kill the process, and fewer would end the checks in a RecursionError. A cheap bound on the
depth decides whether the stream is first measured with libyaml's (iterative) event parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from generator.inputs import MAX_DEPTH
from generator.validate.model import fmt_path

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Duplicate:
    key: str
    line: int  # 1-based line of the repeated key
    first_line: int  # 1-based line of its first occurrence
    path: str  # path of the mapping that holds both ("" for the top level)


class DupKeyLoader(_Base):  # type: ignore[misc, valid-type]
    """A SafeLoader (libyaml-backed when available); duplicates are found on the node tree."""


def _find_duplicates(root: yaml.Node, out: list[Duplicate]) -> yaml.Node | None:
    """Record every duplicate key under ``root`` (iteratively); the first node nested deeper
    than MAX_DEPTH, or None. An alias is the node it names: each node is walked once, so a node
    that holds itself (``&a [*a]``) or aliases of aliases (a billion values) cost one walk."""
    stack: list[tuple[yaml.Node, list, int]] = [(root, [], 1)]
    walked: set[int] = set()
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) or id(node) in walked:
            continue
        walked.add(id(node))
        if depth > MAX_DEPTH:
            return node
        children: list[tuple[yaml.Node, list]] = []
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = (key_node.tag, key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        out.append(Duplicate(key_node.value, line, seen[key], fmt_path(path)))
                    else:
                        seen[key] = line
                    children.append((value_node, path + [key_node.value]))
                else:
                    children.append((key_node, path + ["?"]))  # a collection as a key nests too
                    children.append((value_node, path + ["?"]))
        else:
            children = [(item, path + [index]) for index, item in enumerate(node.value)]
        stack.extend((child, child_path, depth + 1) for child, child_path in reversed(children))
    return None


#: What may open a block level on a line before its content: indentation, "- " and "? ".
_LEAD = re.compile(r"^[ ?-]+", re.MULTILINE)
#: libyaml's recursive composer is safe far below the depth that overflows the C stack.
_COMPOSE_SAFE = 1000


def _deeper_than(text: str, limit: int) -> tuple[bool, int | None]:
    """Whether ``text`` nests more than ``limit`` levels (and the line where it does), measured on
    libyaml's event stream, which has no recursion. A syntax error stops the count: composing
    reports it."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Base):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limit:
                    return True, event.start_mark.line + 1 if event.start_mark else None
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return False, None


def first_alias(text: str) -> tuple[str, int] | None:
    """The first alias (``*name``) in ``text`` and its line, or None (libyaml's event parser; a
    syntax error ends the search: composing reports it)."""
    if "*" not in text:
        return None
    try:
        for event in yaml.parse(text, Loader=_Base):
            if isinstance(event, yaml.AliasEvent):
                return str(event.anchor), (event.start_mark.line + 1 if event.start_mark else 0)
    except yaml.YAMLError:
        pass
    return None


def _may_nest_deeply(text: str) -> bool:
    """A cheap upper bound on the nesting of ``text`` exceeds what is safe to compose: each level
    is a "[" or "{", or at most two per leading column of a line ("a:" then "- b" on one column)."""
    lead = max((len(match) for match in _LEAD.findall(text)), default=0)
    return text.count("[") + text.count("{") + 2 * lead + 2 > _COMPOSE_SAFE


@dataclass
class Document:
    data: object
    line: int  # 1-based line where the document starts


@dataclass
class Stream:
    documents: list[Document]
    duplicates: list[Duplicate]
    error: str | None = None
    error_line: int | None = None


def load_stream(text: str) -> Stream:
    """Parse a multi-document YAML stream; never raises on bad YAML (see ``Stream.error``)."""
    too_deep = f"nested more than {MAX_DEPTH} levels deep"
    if _may_nest_deeply(text):
        deep, line = _deeper_than(text, MAX_DEPTH)
        if deep:
            return Stream([], [], too_deep, line)
    loader = DupKeyLoader(text)
    docs: list[Document] = []
    duplicates: list[Duplicate] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 0
            if node is not None:
                deep_node = _find_duplicates(node, duplicates)
                if deep_node is not None:
                    return Stream(docs, duplicates, too_deep, deep_node.start_mark.line + 1)
            data = loader.construct_document(node)
            if data is not None:
                docs.append(Document(data, line))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        message = " ".join(str(getattr(exc, "problem", None) or exc).split())
        return Stream(docs, duplicates, message, mark.line + 1 if mark else None)
    finally:
        loader.dispose()
    return Stream(docs, duplicates)
