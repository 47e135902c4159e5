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
    "pretty_json",
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


def age(then: datetime | None, now: datetime) -> str:
    """How long ago ``then`` was, compactly: ``4s``, ``3m12s``, ``2h05m``, ``3d4h``."""
    if then is None:
        return "-"
    return duration((now - then).total_seconds())


def clock_time(when: datetime, now: datetime) -> str:
    """``14:05`` today, ``Nov 27 14:05`` on another day, in ``now``'s time zone."""
    local = when.astimezone(now.tzinfo) if now.tzinfo else when
    if local.date() == now.date():
        return local.strftime("%H:%M:%S") if abs((local - now).total_seconds()) < 60 else local.strftime("%H:%M")
    return local.strftime("%b %d %H:%M")


def countdown(deadline: datetime | None, now: datetime) -> str:
    """Time left before ``deadline``: ``in 4m12s``, ``overdue 3s``, ``no deadline``."""
    if deadline is None:
        return "no deadline"
    left = (deadline - now).total_seconds()
    return f"in {duration(left)}" if left >= 0 else f"overdue {duration(-left)}"


def waiting_for(pending: dict[str, Any] | None, now: datetime) -> str:
    """What a suspended run waits for: ``event review-decision`` or ``sleep until 14:05``."""
    if not pending:
        return ""
    if pending.get("kind") == "event":
        return "event " + " | ".join(pending.get("events") or [pending.get("event", "?")])
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


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return repr(value)
