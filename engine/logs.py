"""Log lines of ``tarry worker``: one per run state change and per step attempt, as text or
as JSON, to stderr.

The engine logs through the standard ``logging`` loggers ``tarry.runtime``, ``tarry.runs``
(run transitions and step attempts) and ``tarry.worker`` (``tarry.timers``,
``tarry.registry`` for trouble). :func:`configure` attaches one handler to the root logger,
so the application's own loggers show too (``quiet_app``: only their warnings and errors):

- ``text``: ``2025-06-01T09:00:00.123Z INFO    tarry.runs    run 3f2a... suspended: sleep 'settle'``
  then the line's fields as ``key=value`` (``run_id=3f2a... status=suspended step_id=settle``).
- ``json``: one object per line with ``time``, ``level``, ``logger``, ``message`` and the
  structured fields the line carries: ``run_id``, ``workflow_id``, ``status`` (the run's),
  ``step_id``, ``step_status`` (``started``, ``completed``, ``retrying``, ``failed``),
  ``attempt``, ``duration_ms``, ``error_type``, ``error_message``, ``retry_in_s``,
  ``event``, ``reason``, ``state`` (the worker's), ``holder``, ``owner``; ``traceback``
  when there is one.

A line that the application logs while one of its steps runs carries that step's
``run_id``, ``workflow_id`` and ``step_id`` too (:data:`step_context`).

Step lines are built only when their level is enabled (``isEnabledFor`` first): at ``info``
a step costs two records, at ``warning`` none.

The actor's lines (``run X suspended: ...``, ``run X completed``) carry no ``extra=``; their
fields are read from the message's arguments, keyed by the message template.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "configure", "step_context"]

FIELDS = (
    "run_id",
    "workflow_id",
    "status",
    "step_id",
    "step_status",
    "attempt",
    "duration_ms",
    "error_type",
    "error_message",
    "retry_in_s",
    "event",
    "reason",
    "parent_run_id",
    "forked_from",
    "state",
    "holder",
    "owner",
    "address",
)

#: ``(run_id, workflow_id, step_id)`` of the step running in this task or thread (the actor
#: sets it around each attempt; trio copies it into a sync step's thread).
step_context: ContextVar[tuple[str, str, str] | None] = ContextVar("tarry_step", default=None)

# The actor's message templates (engine/actor.py) and the fields their arguments are.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "run %s suspended: sleep %r": ("run_id", "step_id"),
    "run %s suspended: waiting for event %r (%r)": ("run_id", "event", "step_id"),
    "run %s %s": ("run_id", "status"),
}
_IMPLIED = {"run %s suspended: sleep %r": "suspended", "run %s suspended: waiting for event %r (%r)": "suspended"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: its ``extra=`` ones, or those of a known template."""
    given = record.__dict__  # where extra= puts them (read directly: this runs for every line)
    found = {name: given[name] for name in FIELDS if given.get(name) is not None}
    names = _TEMPLATES.get(str(record.msg))
    if names and isinstance(record.args, tuple) and len(record.args) == len(names):
        for name, value in zip(names, record.args, strict=True):
            found.setdefault(name, value)
        if str(record.msg) in _IMPLIED:
            found.setdefault("status", _IMPLIED[str(record.msg)])
        found = {name: found[name] for name in FIELDS if name in found}  # one order, whatever the source
    return found


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _logfmt(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return orjson.dumps(text).decode()
    return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message``, then the line's fields as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname:<7} {record.name:<13} {record.getMessage()}"
        found = fields_of(record)
        if found:
            line += "  " + " ".join(f"{key}={_logfmt(value)}" for key, value in found.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class _StepFields(logging.Filter):
    """Gives a line the application logs inside a step the step's run, workflow and step id."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = step_context.get()
        if current is not None and not hasattr(record, "run_id"):
            record.run_id, record.workflow_id, record.step_id = current
        return True


def configure(
    fmt: str = "text",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    *,
    quiet_app: bool = False,
) -> Callable[[], None]:
    """Send log records at ``level`` and above to ``stream`` (stderr) as ``fmt`` (``text``
    or ``json``): the ``tarry`` loggers' and, through the root logger, the application's
    and its libraries' (``quiet_app``: only their warnings and errors). Returns a function
    that undoes it."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_StepFields())
    root, tarry = logging.getLogger(), logging.getLogger("tarry")
    before = (root.level, tarry.level, tarry.propagate)
    root.addHandler(handler)
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(max(numeric, logging.WARNING) if quiet_app else numeric)
    tarry.setLevel(level)
    tarry.propagate = True

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(before[0])
        tarry.setLevel(before[1])
        tarry.propagate = before[2]

    return undo
