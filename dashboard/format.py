"""How runs read on screen: relative ages, waits, durations and JSON, all against an injected "now".

Pure functions of their arguments (no clock reads), so snapshot tests that freeze "now" get
the same text every time.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "STATUS_STYLES",
    "age",
    "clock_time",
    "compact_json",
    "countdown",
    "duration",
    "fit",
    "payload_summary",
    "pretty_json",
    "span",
    "waiting_for",
]

#: The theme variable each status is drawn with (Rich markup styles).
STATUS_STYLES = {
    "running": "bold $accent",
    "suspended": "$warning",
    "completed": "$success",
    "failed": "bold $error",
    "cancelled": "$text-muted",
}


def duration(seconds: float) -> str:
    """``0.25`` -> ``250ms``, ``75`` -> ``1m15s``, ``90000`` -> ``1d1h``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def span(seconds: float) -> str:
    """A time span in the tables' one compact form, in one unit, rounded down:
    ``936ms``, ``12s``, ``15m``, ``2h`` (up to ``47h``), ``3d``; a negative span
    is ``0ms``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 2 * 86400:  # "in 1d" would hide most of a day: hours up to two days
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def age(then: datetime | None, now: datetime) -> str:
    """How long ago ``then`` was, as :func:`span` writes it (``-`` when unknown)."""
    if then is None:
        return "-"
    return span((now - then).total_seconds())


def clock_time(when: datetime, now: datetime) -> str:
    """``14:05`` today, ``Nov 27 14:05`` on another day, in ``now``'s time zone."""
    local = when.astimezone(now.tzinfo) if now.tzinfo else when
    if local.date() == now.date():
        return local.strftime("%H:%M:%S") if abs((local - now).total_seconds()) < 60 else local.strftime("%H:%M")
    return local.strftime("%b %d %H:%M")


def countdown(deadline: datetime | None, now: datetime, *, short: bool = False) -> str:
    """Time left before ``deadline``: ``in 4m12s``, ``overdue 3s``, ``no deadline``
    (``short``: in :func:`span`'s form, ``in 4m``)."""
    if deadline is None:
        return "no deadline"
    left = (deadline - now).total_seconds()
    form = span if short else duration
    return f"in {form(left)}" if left >= 0 else f"overdue {form(-left)}"


def waiting_for(pending: dict[str, Any] | None, now: datetime, *, short: bool = False) -> str:
    """What a suspended run waits for: ``event review-decision`` (``short``: the event's
    name alone, ``review-decision``) or ``sleep until 14:05``."""
    if not pending:
        return ""
    if pending.get("kind") == "event":
        events = " | ".join(pending.get("events") or [pending.get("event", "?")])
        return events if short else f"event {events}"
    if pending.get("kind") == "retry":
        wake_at = pending.get("wake_at")
        when = f" at {clock_time(wake_at, now)}" if isinstance(wake_at, datetime) else ""
        return f"retry #{pending.get('attempt')} of {pending.get('step')}{when}"
    if pending.get("kind") == "child":
        return f"child {pending.get('child_run_id', '?')}"
    if pending.get("kind") == "queued":
        return "queued (max_concurrent)"
    if pending.get("kind") == "sleep":
        wake_at = pending.get("wake_at")
        return f"sleep until {clock_time(wake_at, now)}" if isinstance(wake_at, datetime) else "sleep"
    return str(pending.get("kind", ""))


def time_left(pending: dict[str, Any] | None, now: datetime) -> timedelta | None:
    """Time before an event wait times out (``None`` without a deadline)."""
    deadline = (pending or {}).get("deadline")
    return deadline - now if isinstance(deadline, datetime) else None


def pretty_json(value: Any) -> str:
    """Indented JSON text of a stored value (datetimes as ISO 8601)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=_default)


def compact_json(value: Any, width: int = 60) -> str:
    """One-line JSON of ``value``, cut to ``width`` characters with an ellipsis."""
    text = json.dumps(value, ensure_ascii=False, default=_default)
    return text if len(text) <= width else text[: width - 1] + "…"


def fit(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def payload_summary(payload: Any, width: int = 40) -> str:
    """A payload on one line of at most ``width`` characters: its first fields as
    ``customer=ana item=lunch``, or their values alone (``ana lunch``) when the names do not
    fit; nested values as ``{…}`` / ``[…]``; a payload that is not an object as compact JSON."""
    if payload is None:
        return ""
    if not isinstance(payload, dict) or not payload:
        return fit(_scalar(payload), width)
    first = list(payload.items())[:8]
    named = " ".join(f"{key}={_scalar(value)}" for key, value in first)
    if len(named) <= width:
        return named
    return fit(" ".join(_scalar(value) for _, value in first), width)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split()) or '""'
    if isinstance(value, dict):
        return "{…}" if value else "{}"
    if isinstance(value, list | tuple):
        return "[…]" if value else "[]"
    return json.dumps(value, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return repr(value)
