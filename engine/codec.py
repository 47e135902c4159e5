"""The one JSON codec: everything tarry stores goes through here (no pickle, ever).

orjson is used for speed (a step's output is encoded on the hot path of every step). Values
that are not plain JSON but have an obvious JSON form are accepted and stored as that form:
dataclasses, pydantic models (``model_dump(mode="json")``), msgspec structs, datetimes (ISO
8601), UUIDs and enums. A workflow always sees the decoded form, on its first execution as on
replay, so the two can never differ (a tuple comes back as a list both times).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import sys
from typing import Any

import orjson

from .errors import NotSerializable, PayloadTooLarge

__all__ = ["dumps", "loads", "to_plain"]


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):  # pydantic v2 model
        return dump(mode="json")
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    raise TypeError(type(value).__qualname__)


def dumps(
    value: Any,
    *,
    what: str = "value",
    run_id: str | None = None,
    step_id: str | None = None,
    limit: int | None = None,
) -> str:
    """Encode ``value`` as JSON text, at most ``limit`` bytes of it (``None``: no limit).

    Raises:
        NotSerializable: naming ``what`` (step output, payload...), the run, the step and
            the offending type; also for NaN and infinities, which JSON cannot hold
            (orjson would quietly write ``null`` and the value would be lost).
        PayloadTooLarge: the JSON is over ``limit`` bytes.
    """
    try:
        data = orjson.dumps(value, default=_default)
    except TypeError as exc:
        raise NotSerializable(what, _offender(value, exc), run_id=run_id, step_id=step_id) from None
    # Only text with a null in it can hide a NaN, so the common case pays one substring scan.
    if b"null" in data and _has_non_finite(value):
        raise NotSerializable(what, "a float NaN or infinity (JSON has no such number)", run_id=run_id, step_id=step_id)
    if limit is not None and len(data) > limit:
        raise PayloadTooLarge(what, len(data), limit, run_id=run_id, step_id=step_id)
    return data.decode()


def _has_non_finite(value: Any) -> bool:
    """Whether a NaN or infinity is anywhere in ``value``, a dataclass or model included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.append(dataclasses.asdict(item))
        elif isinstance(item, enum.Enum):
            stack.append(item.value)
        elif not isinstance(item, str | int | bytes) and item is not None:
            with contextlib.suppress(TypeError):  # datetime, UUID...: never a float
                stack.append(_default(item))
    return False


def loads(text: str | bytes | None) -> Any:
    """Decode JSON text; ``None`` (SQL NULL) decodes to ``None``."""
    return None if text is None else orjson.loads(text)


def to_plain(value: Any, **where: Any) -> Any:
    """The JSON form of ``value`` as Python data: what a replay will see."""
    if value is None or type(value) in (str, int, bool):
        return value
    return orjson.loads(dumps(value, **where))


def _offender(value: Any, exc: TypeError) -> str:
    """Best effort at naming the type that could not be encoded."""
    text = str(exc)
    if text.startswith("Type is not JSON serializable: "):
        return text.removeprefix("Type is not JSON serializable: ")
    if text and " " not in text:
        return text
    if "Dict key must be str" in text:
        return "dict with non-str keys"
    if "Integer exceeds 64-bit range" in text:
        return "int beyond 64 bits"
    return f"{type(value).__qualname__} ({text})"
