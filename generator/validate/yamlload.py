"""YAML loading that refuses what PyYAML silently accepts: duplicate mapping keys.

PyYAML keeps the last of two equal keys without a word; kustomize and the API server disagree
about which one wins. ``load_stream`` records every duplicate (with both line numbers) and keeps
going, so one run reports all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

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


def _find_duplicates(node: yaml.Node, path: list, out: list[Duplicate]) -> None:
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
                _find_duplicates(value_node, path + [key_node.value], out)
            else:
                _find_duplicates(value_node, path + ["?"], out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicates(item, path + [index], out)


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
    loader = DupKeyLoader(text)
    docs: list[Document] = []
    duplicates: list[Duplicate] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 0
            if node is not None:
                _find_duplicates(node, [], duplicates)
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
