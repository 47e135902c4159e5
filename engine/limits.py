"""Limits on what a caller may hand tarry: names (run ids, event names, step ids...) and sizes.

Every limit is checked before anything is written, so a value over it costs the caller a
typed error and the database nothing. The defaults follow Temporal's: 2 MiB for one
payload, signal payload or step output (a blob that size belongs in object storage, with
its key in the journal), and 1000 UTF-8 bytes for a name.

Names may hold any printable text (unicode, spaces, slashes: a run id is never a file path)
but no control characters: ``\\x00`` cannot be stored by PostgreSQL, ``\\x1f`` separates the
events of one wait in the journal, and a newline in an id breaks every log line it is in.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from .errors import InvalidArgument

__all__ = ["DEFAULT_MAX_OUTPUT_BYTES", "DEFAULT_MAX_PAYLOAD_BYTES", "MAX_NAME_BYTES", "check_limit", "check_name"]

DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_OUTPUT_BYTES = 2 * 1024 * 1024
MAX_NAME_BYTES = 1000


def check_name(kind: str, value: Any, *, optional: bool = False, **where: Any) -> None:
    """Raise :class:`InvalidArgument` unless ``value`` is a usable name of ``kind``.

    ``kind`` is what the message calls it ("run_id", "event name", "step id"); ``where``
    (run_id=, workflow_id=, step_id=) goes into the message and the error's details.
    ``optional``: ``None`` is accepted too.
    """
    if value is None and optional:
        return
    problem = _name_problem(value)
    if problem is None:
        return
    place = ", ".join(f"{key.removesuffix('_id')} {val!r}" for key, val in where.items() if val is not None)
    shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else f"{value[:40]!r}... ({len(value)} chars)"
    raise InvalidArgument(
        f"{place + ': ' if place else ''}{kind} {problem}, not {shown}", field=kind.replace(" ", "_"), **where
    )


def _name_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must be a non-empty string"
    if len(value) * 4 > MAX_NAME_BYTES and len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"must be at most {MAX_NAME_BYTES} bytes of UTF-8"
    if not value.isprintable():
        # isprintable() also refuses harmless text (U+00A0, format marks such as a zero-width
        # joiner in an emoji): only control characters and lone surrogates are refused.
        for char in value:
            if unicodedata.category(char) in ("Cc", "Cs"):
                return f"must not contain the character {char!r}"
    return None


def check_limit(name: str, value: Any, *, unit: str = "bytes") -> int | None:
    """``value`` as a limit counted in ``unit`` (an int >= 1, or ``None`` for no limit)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidArgument(f"{name} must be an int >= 1 ({unit}) or None (no limit), not {value!r}", field=name)
    return value
