"""A JSON Schema (draft 2020-12) from a pydantic model, written the way a person would write it,
because editors show it and ``jsonschema`` checks files against it (``generator/inputs.py``
turns its errors into one line per problem).

- Each mapping is written where it is used, not as a ``$ref`` to a definition named after a
  Python class. Only named definitions are kept in ``$defs``: an ``Annotated`` type marked with
  :class:`Definition`, and a model (or dataclass) that sets ``json_schema_definition``; they are
  rules used in several places, or ones other schemas ``$ref`` (``platform.schema.json#/$defs/dnsLabel``).
- A file holds no ``null``: an optional key is left out, so ``X | None`` is written as ``X``.
- A default is shown where it is a plain value (a number, a boolean, a word); ``None``, ``""``
  and collections mean "not set" and are left out. Titles are left out: keys name themselves.
- :func:`dumps` writes keys sorted and a ``$comment`` that names the command that wrote it, so
  the same models always give the same bytes.
"""

from __future__ import annotations

import json
from typing import Any, cast

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_REF = "#/$defs/"


class Definition:
    """Marks an ``Annotated`` type as the schema definition ``name`` (``$defs/<name>``), written
    once, with ``description`` and any further ``keywords`` (``not``, ``format``), and referenced
    wherever the type is used."""

    def __init__(self, name: str, description: str = "", **keywords: Any) -> None:
        self.name = name
        self.keywords = {**({"description": description} if description else {}), **keywords}

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """The type's own schema, with the reference its JSON Schema definition is named by and
        the keywords its definition gets (pydantic's ``pydantic_js_updates`` metadata: applied to
        the definition itself, where an annotation's JSON Schema hook would see only the ``$ref``)."""
        schema = handler(source)
        body = cast(dict[str, Any], schema)
        body["ref"] = self.name
        body.setdefault("metadata", {}).setdefault("pydantic_js_updates", {}).update(self.keywords)
        return schema


class _Generator(GenerateJsonSchema):
    """pydantic's generator, without nulls, titles or "not set" defaults, with each class written
    in place unless it names its definition (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Class name -> the definition it names (``json_schema_definition``), or "" (in place).
        self._classes: dict[str, str] = {}

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        """A model's schema; notes whether its class names a definition."""
        self._note(schema["cls"])
        return super().model_schema(schema)

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        """A dataclass's schema; notes whether its class names a definition."""
        self._note(schema["cls"])
        return super().dataclass_schema(schema)

    def _note(self, cls: type) -> None:
        """Remember whether ``cls`` names its definition (classes are told apart by name)."""
        self._classes[cls.__name__] = getattr(cls, "json_schema_definition", "")

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        """``X | None`` as ``X``: the key is left out instead."""
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        """The inner schema, with its default where that is a plain value."""
        json_schema = super().default_schema(schema)
        if json_schema.get("default") in (None, "") or isinstance(json_schema.get("default"), (list, dict)):
            json_schema.pop("default", None)
        return json_schema

    def field_title_should_be_set(self, schema: Any) -> bool:
        """Never: a key is its own title."""
        return False

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        """The schema with every class written in place but the named ones, which are renamed."""
        out = super().generate(schema, mode)
        found = out.pop("$defs", {})
        names = {key: self._classes.get(key, key) for key in found}  # "" = in place
        definitions = {names[key] or key: body for key, body in found.items()}
        refs = {_REF + key: _REF + (names[key] or key) for key in found}
        inline = {key for key, name in names.items() if not name}
        out = _rewritten(out, definitions, refs, inline)
        out.pop("title", None)
        kept = {
            name: _rewritten(body, definitions, refs, inline)
            for name, body in definitions.items()
            if name not in inline
        }
        if kept:
            out["$defs"] = kept
        return out


def _rewritten(node: Any, definitions: dict[str, Any], refs: dict[str, str], inline: set[str]) -> Any:
    """``node`` with each ``$ref`` renamed, a class written in place of its ``$ref`` (the keys
    beside the ``$ref``, such as a description, win), and no titles."""
    if isinstance(node, list):
        return [_rewritten(item, definitions, refs, inline) for item in node]
    if not isinstance(node, dict):
        return node
    ref = refs.get(node.get("$ref", ""), node.get("$ref"))
    if isinstance(ref, str) and ref.removeprefix(_REF) in inline:
        node = {**definitions[ref.removeprefix(_REF)], **{k: v for k, v in node.items() if k != "$ref"}}
    elif isinstance(ref, str):
        node = {**node, "$ref": ref}
    return {
        key: _value(key, value, definitions, refs, inline)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }


def _value(key: str, value: Any, definitions: dict[str, Any], refs: dict[str, str], inline: set[str]) -> Any:
    """A keyword's value: a description on one line (a docstring's line breaks are not text),
    values that are data as they are, schemas rewritten."""
    if key == "description" and isinstance(value, str):
        return " ".join(value.split())
    if key in ("default", "const", "enum"):
        return value
    return _rewritten(value, definitions, refs, inline)


def json_schema(model: type[BaseModel], *, schema_id: str, title: str) -> dict[str, Any]:
    """The JSON Schema of ``model`` as file ``schema_id`` (its ``$id``, which other schemas ``$ref``),
    described by the model's docstring."""
    body = model.model_json_schema(schema_generator=_Generator)
    return {"$schema": DRAFT, "$id": schema_id, "title": title, **body}


def definitions_schema(
    models: dict[str, type[BaseModel]], *, schema_id: str, title: str, description: str
) -> dict[str, Any]:
    """A JSON Schema of definitions only, one per model under its key (a file's name, which a
    validator or another schema ``$ref``s), with the definitions they share."""
    definitions: dict[str, Any] = {}
    for name, model in models.items():
        body = model.model_json_schema(schema_generator=_Generator)
        definitions.update(body.pop("$defs", {}))
        definitions[name] = body
    return {"$schema": DRAFT, "$id": schema_id, "title": title, "description": description, "$defs": definitions}


def dumps(schema: dict[str, Any], command: str) -> str:
    """``schema`` as the text of its file: a ``$comment`` naming ``command``, keys sorted, two-space indent."""
    comment = f"Generated by `{command}` from the models in generator/; do not edit."
    return json.dumps({"$comment": comment, **schema}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
