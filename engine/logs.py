"""Log lines of ``tarry worker``: one per run state change, as text or as JSON, to stderr.

The engine logs through the standard ``logging`` loggers ``tarry.runtime``, ``tarry.runs``
and ``tarry.worker`` (``tarry.timers``, ``tarry.registry`` for trouble). :func:`configure`
attaches one handler to ``tarry``:

- ``text``: ``2025-06-01T09:00:00.123Z INFO  tarry.runs  run 3f2a... suspended: sleep 'settle'``
- ``json``: one object per line with ``time``, ``level``, ``logger``, ``message`` and the
  structured fields the line carries: ``run_id``, ``workflow_id``, ``status``, ``step_id``,
  ``event``, ``attempt``, ``reason``, ``state`` (the worker's), ``holder``, ``owner``;
  ``traceback`` when there is one.

The actor's lines (``run X suspended: ...``, ``run X completed``) carry no ``extra=``; their
fields are read from the message's arguments, keyed by the message template.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "configure"]

FIELDS = ("run_id", "workflow_id", "status", "step_id", "event", "attempt", "reason", "state", "holder", "owner")

# The actor's message templates (engine/actor.py) and the fields their arguments are.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "run %s suspended: sleep %r": ("run_id", "step_id"),
    "run %s suspended: waiting for event %r (%r)": ("run_id", "event", "step_id"),
    "run %s %s": ("run_id", "status"),
}
_IMPLIED = {"run %s suspended: sleep %r": "suspended", "run %s suspended: waiting for event %r (%r)": "suspended"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: its ``extra=`` ones, or those of a known template."""
    found = {name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None}
    names = _TEMPLATES.get(str(record.msg))
    if names and isinstance(record.args, tuple) and len(record.args) == len(names):
        for name, value in zip(names, record.args, strict=True):
            found.setdefault(name, value)
        if str(record.msg) in _IMPLIED:
            found.setdefault("status", _IMPLIED[str(record.msg)])
    return found


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname:<7} {record.name:<13} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
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


def configure(fmt: str = "text", level: int | str = logging.INFO, stream: TextIO | None = None) -> Callable[[], None]:
    """Send the ``tarry`` loggers' records at ``level`` and above to ``stream`` (stderr) as
    ``fmt`` (``text`` or ``json``), and no further up. Returns a function that undoes it."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger("tarry")
    before = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]

    return undo
