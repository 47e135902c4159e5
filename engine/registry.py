"""The workflow registry a worker publishes, and the payload check of clients without the code.

When a worker takes a database's lease it publishes the workflows it can run (id,
description, and the payload's JSON Schema when one can be derived). An
``tarry.Client`` that was not given the workflows' code validates against that:

- pydantic models: ``model_json_schema()``; msgspec types: ``msgspec.json.schema()``;
  dataclasses: derived here, mirroring what :mod:`tarry.schema` checks (the simple types,
  ``X | None``, nested dataclasses; unknown keys refused);
- a callable validator, or no schema: nothing to publish, so anything JSON is accepted and
  the worker validates when the run starts (an invalid payload then fails the run with
  :class:`PayloadValidationError`).

:func:`check_payload` is a small JSON Schema check, not a full implementation: ``$ref``
(local), ``type``, ``enum``, ``const``, ``anyOf``/``oneOf``/``allOf``, ``properties``,
``required``, ``additionalProperties``, ``items``/``prefixItems``, lengths, bounds and
``pattern``; other keywords are ignored (the worker's own validation is the final word).
Missing properties that declare a ``default`` get it, so a stored payload looks like
what the model would dump. It is strict about JSON types where pydantic's lax mode
coerces (``"5"`` for an ``int``): give the Client ``workflows=`` (the CLI ``--app``) to
validate exactly as the worker does.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import math
import re
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import PayloadValidationError
from .workflow import Workflow

__all__ = ["check_payload", "describe"]

log = logging.getLogger("tarry.registry")

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def describe(wf: Workflow[Any]) -> dict[str, Any]:
    """``{"id", "description", "schema_kind", "payload_schema"}`` of a workflow (JSON-ready)."""
    return {
        "id": wf.id,
        "description": wf.description,
        "schema_kind": wf.schema.kind,
        "payload_schema": payload_schema(wf),
        "schedule": None if wf.schedule is None else wf.schedule.describe(),
        "tags": list(wf.tags),
    }


def payload_schema(wf: Workflow[Any]) -> dict[str, Any] | None:
    """The JSON Schema of the workflow's payload, or ``None`` when none can be derived."""
    kind = wf.schema.kind
    # PayloadSchema keeps what the user passed private; the registry needs the class itself.
    target = wf.schema._target
    try:
        if kind == "pydantic":
            return dict(target.model_json_schema())
        if kind == "msgspec":
            return dict(sys.modules["msgspec"].json.schema(target))
        if kind == "dataclass":
            defs: dict[str, Any] = {}
            root = _dataclass_schema(target, defs)
            return {**root, "$defs": defs} if defs else root
    except Exception as exc:  # a type the library cannot express in JSON Schema
        log.warning("workflow %r: no JSON Schema for its payload (%s: %s)", wf.id, type(exc).__name__, exc)
    return None


# -- dataclasses ----------------------------------------------------------------------------------


def _dataclass_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    params = inspect.signature(cls).parameters.values()
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in params:
        if p.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            continue
        hint = hints.get(p.name, Any)
        if isinstance(hint, dataclasses.InitVar):
            hint = hint.type
        properties[p.name] = _hint_schema(hint, defs)
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        elif _is_json(p.default):
            properties[p.name]["default"] = p.default
    for f in dataclasses.fields(cls):
        if not f.init:
            properties.setdefault(f.name, {})  # in the JSON form of an instance; ignored on input
    schema: dict[str, Any] = {"type": "object", "title": cls.__name__, "properties": properties}
    if required:
        schema["required"] = required
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        schema["additionalProperties"] = False
    return schema


def _hint_schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # placeholder: recursive dataclasses
            defs[name] = _dataclass_schema(hint, defs)
        return {"$ref": f"#/$defs/{name}"}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_hint_schema(member, defs) for member in typing.get_args(hint)]}
    if origin is list:
        return {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    return {}  # not checked by tarry.schema either


def _is_json(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# -- the check ------------------------------------------------------------------------------------


def check_payload(workflow_id: str, schema: dict[str, Any] | None, payload: Any) -> Any:
    """``payload``, with declared defaults filled in, if it passes ``schema``.

    Raises:
        PayloadValidationError: naming every failing field (``items.0.sku``), as the
            in-process validation does.
    """
    if not schema:
        return payload
    errors: list[dict[str, str]] = []
    value = _Checker(schema, errors).check(schema, payload, "")
    if errors:
        raise PayloadValidationError(workflow_id, errors)
    return value


def _json_type(value: Any) -> str:
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
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    actual = _json_type(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer":
        return actual == "integer" or (actual == "number" and math.isfinite(value) and float(value).is_integer())
    return actual == name


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class _Checker:
    def __init__(self, root: dict[str, Any], errors: list[dict[str, str]]) -> None:
        self.root = root
        self.errors = errors

    def fail(self, path: str, message: str) -> None:
        self.errors.append({"field": path, "message": message})

    def resolve(self, node: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            ref = node["$ref"]
            target: Any = None
            if isinstance(ref, str) and ref.startswith("#/"):
                target = self.root
                for part in ref[2:].split("/"):
                    target = (
                        target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
                    )
            if not isinstance(target, dict):
                return {}  # an unresolvable reference checks nothing
            node = target
            seen += 1
        return node if isinstance(node, dict) else {}

    def check(self, node: Any, value: Any, path: str) -> Any:
        node = self.resolve(node)
        for sub in node.get("allOf", ()):
            value = self.check(sub, value, path)
        for key in ("anyOf", "oneOf"):
            if key in node:
                value = self.any_of(node[key], value, path)
        if "const" in node and value != node["const"]:
            self.fail(path, f"must be {node['const']!r}")
        if "enum" in node and value not in node["enum"]:
            self.fail(path, "must be one of " + ", ".join(repr(v) for v in node["enum"]))
        expected = node.get("type")
        if expected is not None:
            names = [expected] if isinstance(expected, str) else list(expected)
            if not any(_is_type(value, name) for name in names):
                self.fail(path, f"expected {' or '.join(names)}, got {_json_type(value)}")
                return value
        if isinstance(value, dict):
            return self.object(node, value, path)
        if isinstance(value, list):
            return self.array(node, value, path)
        if isinstance(value, str):
            self.string(node, value, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self.number(node, value, path)
        return value

    def any_of(self, options: list[Any], value: Any, path: str) -> Any:
        for option in options:
            trial = _Checker(self.root, [])
            checked = trial.check(option, value, path)
            if not trial.errors:
                return checked
        kinds = [self.resolve(o).get("type") or self.resolve(o).get("title") or "a schema" for o in options]
        self.fail(path, f"matches none of: {', '.join(str(k) for k in kinds)}")
        return value

    def object(self, node: dict[str, Any], value: dict[str, Any], path: str) -> dict[str, Any]:
        properties = node.get("properties", {})
        result = dict(value)
        for name in node.get("required", ()):
            if name not in value:
                self.fail(_join(path, name), "field required")
        for name, sub in properties.items():
            if name in value:
                result[name] = self.check(sub, value[name], _join(path, name))
            else:
                resolved = self.resolve(sub)
                if "default" in resolved and name not in node.get("required", ()):
                    result[name] = copy.deepcopy(resolved["default"])
                elif "default" in sub and name not in node.get("required", ()):
                    result[name] = copy.deepcopy(sub["default"])
        extra = node.get("additionalProperties", True)
        for name in value:
            if name in properties:
                continue
            if extra is False:
                self.fail(_join(path, name), "unknown field")
            elif isinstance(extra, dict):
                result[name] = self.check(extra, value[name], _join(path, name))
        return result

    def array(self, node: dict[str, Any], value: list[Any], path: str) -> list[Any]:
        result = list(value)
        prefix = node.get("prefixItems", [])
        for i, sub in enumerate(prefix[: len(value)]):
            result[i] = self.check(sub, value[i], _join(path, i))
        items = node.get("items")
        if isinstance(items, dict):
            for i in range(len(prefix), len(value)):
                result[i] = self.check(items, value[i], _join(path, i))
        if "minItems" in node and len(value) < node["minItems"]:
            self.fail(path, f"needs at least {node['minItems']} item(s)")
        if "maxItems" in node and len(value) > node["maxItems"]:
            self.fail(path, f"takes at most {node['maxItems']} item(s)")
        return result

    def string(self, node: dict[str, Any], value: str, path: str) -> None:
        if "minLength" in node and len(value) < node["minLength"]:
            self.fail(path, f"needs at least {node['minLength']} character(s)")
        if "maxLength" in node and len(value) > node["maxLength"]:
            self.fail(path, f"takes at most {node['maxLength']} character(s)")
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.search(pattern, value) is None:
                    self.fail(path, f"does not match {pattern!r}")
            except re.error:
                pass  # a pattern Python's re does not read: not checked here

    def number(self, node: dict[str, Any], value: float, path: str) -> None:
        checks: tuple[tuple[str, Callable[[float], bool], str], ...] = (
            ("minimum", lambda b: value >= b, ">="),
            ("maximum", lambda b: value <= b, "<="),
            ("exclusiveMinimum", lambda b: value > b, ">"),
            ("exclusiveMaximum", lambda b: value < b, "<"),
        )
        for key, ok, sign in checks:
            bound = node.get(key)
            if isinstance(bound, int | float) and not isinstance(bound, bool) and not ok(bound):
                self.fail(path, f"must be {sign} {bound}")
        step = node.get("multipleOf")
        if isinstance(step, int | float) and step > 0 and not float(value / step).is_integer():
            self.fail(path, f"must be a multiple of {step}")
