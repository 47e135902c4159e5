"""Payload schemas: one interface over pydantic, msgspec, dataclasses and plain validator functions.

A workflow's ``payload=`` (and an event's schema) may be:

* ``None``: any value goes through unchanged (it must still be JSON to be stored; the codec
  checks that when it is written);
* a pydantic v2 model class (anything with a ``model_validate`` classmethod): ``model_validate``
  in pydantic's default (lax) mode, so ``"5"`` becomes ``5`` for an ``int`` field;
* a msgspec ``Struct`` type: ``msgspec.convert`` (strict: ``"5"`` is not an ``int``);
* a dataclass type: checked here, without pydantic (see below);
* any other callable, e.g. ``def check(v): ...; return v``: its return value *is* the payload,
  so a function that only checks must return the value it was given. Async callables are
  refused: validation happens before anything is written, synchronously.

Neither pydantic nor msgspec is imported here: pydantic models are recognised by duck typing,
msgspec structs only when ``msgspec`` is already in ``sys.modules`` (if it is not, nothing can
be a ``Struct``).

Guarantees:

* :meth:`PayloadSchema.validate` returns the validated value (a model instance, a struct, a
  dataclass instance, or the callable's return value) or raises
  :class:`~tarry.errors.PayloadValidationError`, whose ``errors`` are
  ``[{"field": "items.0.sku", "message": "..."}]`` whatever the library (``field`` is ``""`` when
  the problem is not about one field). List indices appear as path parts (``items.0``).
* An instance of the schema's own class is accepted as is, without re-validation.
* An exception raised by the validator is reported with the original chained as
  ``__cause__``; ``BaseException``\\s that are not ``Exception`` (trio's ``Cancelled``,
  ``KeyboardInterrupt``) are never caught.

Dataclasses, from a mapping: every init parameter without a default must be present
(``"field required"``); keys that are not init parameters are refused (``"unknown field"``),
except ``init=False`` fields, which are ignored because the codec's JSON form of an instance
contains them. Values are type-checked (no coercion, so an ``int`` stays an ``int`` in a
``float`` field) only for ``str``, ``int``, ``float`` (an ``int`` passes), ``bool`` (and never
as an ``int``/``float``), ``list``/``dict`` (also ``list[X]``/``dict[K, V]``, whose elements are
not checked), unions of those with or without ``None`` (``X | None``, ``Optional[X]``), and nested
dataclasses (validated recursively, from a mapping or an instance). Any other annotation
(``Any``, ``Literal``, enums, datetimes, other classes) is passed through unchecked. Errors from
the constructor itself (``__post_init__``) are reported like a callable's.

Failure modes: :meth:`PayloadSchema.from_user` raises :class:`~tarry.errors.InvalidArgument`
for something that is none of the above (an ``int``, a model *instance*, a plain non-dataclass
class, a ``list[int]`` alias), for an async callable, and for a dataclass whose annotations do
not resolve (a forward reference to a name that does not exist).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from .errors import InvalidArgument, PayloadValidationError

__all__ = ["PayloadSchema"]

SchemaKind = Literal["any", "pydantic", "msgspec", "dataclass", "callable"]
FieldError = dict[str, str]

# The annotations whose runtime check is a plain isinstance; bool is excluded from int and float below.
_SIMPLE_TYPES: Final[tuple[type, ...]] = (str, int, float, bool, list, dict)
_NONE_TYPE: Final = type(None)
_UNION_ORIGINS: Final = (typing.Union, types.UnionType)

# msgspec: "Expected `str`, got `int` - at `$.items[0].sku`" and, for a dict key,
# "Expected `str`, got `int` - at `key` in `$.meta`".
_MSGSPEC_AT = re.compile(r"^(?P<message>.*?) - at (?P<key>`key` in )?`(?P<path>[^`]*)`$", re.DOTALL)
# "Object missing required field `qty`" / "Object contains unknown field `zz`" name the field in
# the message, not in the path; it is moved to the path to match what pydantic reports.
_MSGSPEC_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]*)`$")
_INDEX = re.compile(r"\[(\d+)\]")


class PayloadSchema:
    """A workflow's payload schema, whatever the user passed. Build it with :meth:`from_user`."""

    __slots__ = ("_kind", "_plans", "_target")

    def __init__(self, kind: SchemaKind, target: Any, plans: dict[type, _Plan] | None = None) -> None:
        # Private: from_user() decides the kind; this only stores it.
        self._kind: SchemaKind = kind
        self._target: Any = target
        self._plans: dict[type, _Plan] = plans or {}

    @classmethod
    def from_user(cls, schema: object | None) -> PayloadSchema:
        """Wrap what the user passed as ``payload=``.

        Args:
            schema: ``None``, a pydantic model class, a msgspec Struct type, a dataclass type,
                a synchronous callable, or an existing :class:`PayloadSchema` (returned as is).

        Raises:
            InvalidArgument: ``schema`` is none of those, or is a dataclass whose annotations
                do not resolve.
        """
        if isinstance(schema, PayloadSchema):
            return schema
        if schema is None:
            return cls("any", None)
        if isinstance(schema, type):
            if callable(getattr(schema, "model_validate", None)):
                return cls("pydantic", schema)
            msgspec = sys.modules.get("msgspec")
            if msgspec is not None and issubclass(schema, msgspec.Struct):
                return cls("msgspec", schema)
            if dataclasses.is_dataclass(schema):
                return cls("dataclass", schema, _plan_dataclasses(schema))
            # Calling a plain class with the payload dict as its one argument is almost never a
            # validator (Order(payload) instead of Order(**payload)), so it is refused, not guessed.
            raise _not_a_schema(schema, "a plain class is not a schema; make it a @dataclass or pass a function")
        if typing.get_origin(schema) is not None:
            raise _not_a_schema(
                schema, "a type alias is not a schema; wrap it, e.g. pydantic.TypeAdapter(...).validate_python"
            )
        if callable(schema):
            if inspect.iscoroutinefunction(schema) or inspect.iscoroutinefunction(type(schema).__call__):
                raise _not_a_schema(schema, "the validator is async; payload validation must be a plain function")
            return cls("callable", schema)
        if hasattr(schema, "model_validate") or dataclasses.is_dataclass(schema):
            raise _not_a_schema(schema, "this is an instance; pass its class")
        raise _not_a_schema(schema, f"a value of type {type(schema).__name__} is not a schema")

    @property
    def kind(self) -> SchemaKind:
        """``"any"``, ``"pydantic"``, ``"msgspec"``, ``"dataclass"`` or ``"callable"``."""
        return self._kind

    @property
    def name(self) -> str:
        """A label for error messages and the dashboard, e.g. ``"Order (pydantic)"``."""
        if self._kind == "any":
            return "any JSON"
        return f"{_qualname(self._target)} ({self._kind})"

    def __repr__(self) -> str:
        return f"PayloadSchema({self.name})"

    def validate(self, value: Any, *, workflow_id: str, what: str = "payload") -> Any:
        """Validate ``value`` and return the validated form.

        Args:
            value: usually JSON data (a dict), or an instance of the schema's class.
            workflow_id: named in the error.
            what: what is being validated, for the message ("payload", "event payload").

        Returns:
            A model instance, a struct, a dataclass instance, the callable's return value, or
            ``value`` itself when there is no schema or it already is an instance.

        Raises:
            PayloadValidationError: ``value`` does not pass; ``errors`` lists every failure the
                validator reported, ``field`` is the first one's.
        """
        if self._kind == "any":
            return value
        if self._kind in ("pydantic", "msgspec", "dataclass") and isinstance(value, self._target):
            return value
        if self._kind == "dataclass":
            found = _Findings()
            built = self._build(self._target, value, "", found)
            if found.errors:
                raise PayloadValidationError(workflow_id, found.errors, what=what) from found.cause
            return built
        try:
            if self._kind == "pydantic":
                return self._target.model_validate(value)
            if self._kind == "msgspec":
                return sys.modules["msgspec"].convert(value, self._target)
            return self._target(value)
        # Whatever the validator raises is a verdict on the value; BaseException (trio.Cancelled) passes.
        except Exception as exc:
            raise PayloadValidationError(workflow_id, self._errors_of(exc), what=what) from exc

    # -- mapping library errors to {"field", "message"} --------------------------------------

    def _errors_of(self, exc: Exception) -> list[FieldError]:
        msgspec = sys.modules.get("msgspec")
        if msgspec is not None and isinstance(exc, msgspec.ValidationError):
            return [_msgspec_error(str(exc))]
        return _exception_errors(exc)

    # -- dataclasses -------------------------------------------------------------------------

    def _build(self, cls: type, data: object, prefix: str, found: _Findings) -> Any:
        """An instance of dataclass ``cls`` from ``data``, or None with the problems added to ``found``."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            found.add(prefix, f"expected an object for {cls.__name__}, got {_type_name(data)}")
            return None
        plan = self._plans[cls]
        before = len(found.errors)
        kwargs: dict[str, Any] = {}
        for name, (required, hint) in plan.params.items():
            if name in data:
                kwargs[name] = self._check(data[name], hint, _join(prefix, name), found)
            elif required:
                found.add(_join(prefix, name), "field required")
        for key in data:
            if key not in plan.params and key not in plan.derived:
                if plan.takes_any_keyword and isinstance(key, str):
                    kwargs[key] = data[key]
                else:
                    found.add(_join(prefix, str(key)), "unknown field")
        if len(found.errors) > before:
            return None
        try:
            return cls(**kwargs)
        # __post_init__ or a custom __init__ refusing the values: a verdict on the payload.
        except Exception as exc:
            for error in _exception_errors(exc):
                found.add(_join(prefix, error["field"]), error["message"])
            found.cause = found.cause or exc
            return None

    def _check(self, value: Any, hint: Any, path: str, found: _Findings) -> Any:
        """``value``, or the nested dataclass built from it; a mismatch is added to ``found``."""
        if isinstance(hint, dataclasses.InitVar):
            hint = hint.type
        if typing.get_origin(hint) in _UNION_ORIGINS:
            members = typing.get_args(hint)
            if value is None and _NONE_TYPE in members:
                return None
            others = [m for m in members if m is not _NONE_TYPE]
            if len(others) == 1 and _is_dataclass_type(others[0]):  # Address | None
                return self._build(others[0], value, path, found)
            expected = [_simple_type(m) for m in others]
            if None in expected:
                return value  # a member we do not check (Any, a class, one dataclass of several): pass through
            if not any(_fits(value, t) for t in expected if t is not None):
                found.add(path, f"expected {_hint_label(hint)}, got {_type_name(value)}")
            return value
        if _is_dataclass_type(hint):
            return self._build(hint, value, path, found)
        expected_type = _simple_type(hint)
        if expected_type is not None and not _fits(value, expected_type):
            found.add(path, f"expected {_hint_label(hint)}, got {_type_name(value)}")
        return value


# -- helpers of the dataclass check ----------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Findings:
    """What validating one dataclass payload found: every field error, and the first exception a
    constructor raised (chained as the ``__cause__`` of the PayloadValidationError)."""

    errors: list[FieldError] = dataclasses.field(default_factory=list)
    cause: Exception | None = None

    def add(self, field: str, message: str) -> None:
        self.errors.append(_error(field, message))


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What building one dataclass from a mapping needs, worked out once per schema."""

    params: dict[str, tuple[bool, Any]]  # init parameter -> (required, resolved annotation)
    derived: frozenset[str]  # init=False fields: present in the codec's JSON form, not settable
    takes_any_keyword: bool  # a custom __init__(**kwargs) accepts keys we do not know


def _plan_dataclasses(root: type) -> dict[type, _Plan]:
    """Plans for ``root`` and every dataclass its fields reach, made now so that a bad forward
    reference fails when the workflow is defined, not on its first payload."""
    found: dict[type, _Plan] = {}
    pending = [root]
    while pending:
        cls = pending.pop()
        if cls in found:
            continue
        try:
            hints = typing.get_type_hints(cls)
        except Exception as exc:  # NameError for an unknown forward reference, TypeError for a bad one
            raise InvalidArgument(
                f"cannot use dataclass {_qualname(cls)} as a payload schema: its annotations do not "
                f"resolve ({type(exc).__name__}: {exc}); define or import the names they use at module level",
                schema=_qualname(cls),
            ) from exc
        # The signature is the constructor's contract: it includes InitVars and honours a custom __init__.
        params = inspect.signature(cls).parameters.values()
        found[cls] = _Plan(
            params={
                p.name: (p.default is inspect.Parameter.empty, hints.get(p.name, Any))
                for p in params
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            },
            derived=frozenset(f.name for f in dataclasses.fields(cls) if not f.init),
            takes_any_keyword=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
        )
        pending.extend(_nested_dataclasses(hints.values()))
    return found


def _nested_dataclasses(hints: typing.Iterable[Any]) -> list[type]:
    nested: list[type] = []
    for hint in hints:
        inner = hint.type if isinstance(hint, dataclasses.InitVar) else hint
        candidates = typing.get_args(inner) if typing.get_origin(inner) in _UNION_ORIGINS else (inner,)
        nested.extend(c for c in candidates if _is_dataclass_type(c))
    return nested


def _simple_type(hint: Any) -> type | None:
    """The runtime class to isinstance-check for ``hint``, or None when it is not checked."""
    if isinstance(hint, type) and hint in _SIMPLE_TYPES:
        return hint
    origin = typing.get_origin(hint)
    return origin if origin is list or origin is dict else None


def _fits(value: object, expected: type) -> bool:
    # bool is an int subclass, and JSON true is not 1: keep them apart both ways.
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _hint_label(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _error(field: str, message: str) -> FieldError:
    return {"field": field, "message": message}


# -- helpers of the error mapping ------------------------------------------------------------


def _exception_errors(exc: Exception) -> list[FieldError]:
    """Field errors from ``exc.errors()`` when it looks like pydantic's, else one unnamed error."""
    errors_method: Callable[[], object] | None = getattr(exc, "errors", None)
    if callable(errors_method):
        try:
            reported = errors_method()
        # An unrelated .errors() (one that needs arguments, or breaks): fall back to the message.
        except Exception:
            reported = None
        if isinstance(reported, list) and reported and all(isinstance(e, Mapping) for e in reported):
            return [_pydantic_like_error(e) for e in reported]
    return [_error("", f"{type(exc).__name__}: {exc}")]


def _pydantic_like_error(entry: Mapping[str, Any]) -> FieldError:
    if "loc" in entry:
        loc = entry["loc"]
        field = ".".join(str(part) for part in loc) if isinstance(loc, (tuple, list)) else str(loc)
    else:
        field = str(entry.get("field") or "")
    return _error(field, str(entry.get("msg") or entry.get("message") or entry))


def _msgspec_error(text: str) -> FieldError:
    message, path = text, ""
    if match := _MSGSPEC_AT.match(text):
        message, path = match["message"], _msgspec_path(match["path"])
        if match["key"]:
            message += " (in a key)"
    if named := _MSGSPEC_NAMED_FIELD.match(message):
        path = _join(path, named["name"])
    return _error(path, message)


def _msgspec_path(path: str) -> str:
    """``$.items[0].sku`` -> ``items.0.sku``; ``$.meta[...]`` (a dict value) -> ``meta[...]``."""
    return _INDEX.sub(r".\1", path.removeprefix("$")).lstrip(".")


def _qualname(obj: object) -> str:
    return str(getattr(obj, "__qualname__", None) or type(obj).__qualname__)


def _not_a_schema(schema: object, why: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid payload schema {schema!r}: {why}. Pass a pydantic model class, a msgspec Struct type, "
        "a dataclass type, a function that validates and returns the payload, or None",
        schema=repr(schema),
    )
