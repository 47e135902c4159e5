"""Turning a sleep/timeout spec into the UTC instant a run wakes up.

``ctx.sleep(step_id, spec)`` and ``ctx.wait_for_event(..., timeout=spec)`` accept:

* ``int`` / ``float`` seconds: finite and ``>= 0`` (``bool`` is refused, ``True`` is not 1 second);
* a :class:`datetime.timedelta` ``>= 0``;
* ``{"amount": 2, "unit": "hours"}`` with a unit from :data:`UNITS` (``ms``, ``s``, ``m``, ``h``,
  ``d``, ``w`` and their singular/plural names; case-sensitive, so ``"M"`` is never read as
  months). Months and years are refused: they have no fixed length, use a cron or a datetime;
* ``{"cron": "0 9 * * *", "tz": "Europe/Berlin"}`` (``tz`` defaults to ``"UTC"``): the next
  firing strictly after ``now``, computed on the wall clock of ``tz``. The expression is what
  cronsim parses: 5 fields (``minute hour day-of-month month day-of-week``), or 6 with a leading
  seconds field;
* an aware :class:`datetime.datetime`: sleep until that instant. One in the past is returned
  as is: the sleep is already due.

Guarantees:

* :func:`resolve_wake_at` returns an aware datetime in ``datetime.UTC``, ``>= now``
  (``> now`` for cron), and for relative specs exactly ``now + amount`` (rounded to the
  microsecond by :class:`datetime.timedelta`, never via float seconds, so large amounts keep
  their precision).
* :func:`validate_spec` accepts exactly the specs :func:`resolve_wake_at` accepts, without a
  clock, so a bad spec is refused before anything is journaled. The only failure it cannot see
  in advance is a wake-up beyond ``datetime.max`` (year 9999), which depends on ``now``.
* Cron across DST (Debian cron semantics, from cronsim): a fixed-time job whose local time is
  skipped by a spring-forward fires at the first valid minute after the gap (``30 2 * * *`` on
  the night Berlin jumps 02:00 -> 03:00 fires at 03:00 local); one whose local time occurs twice
  at fall-back fires once, on the first occurrence.

Failure modes: every refusal is :class:`~tarry.errors.InvalidDuration` (``reason`` says what was
wrong: ``"negative"``, ``"unknown unit 'fortnights' ..."``, ``"not a number ..."``) or, for a cron
expression or time zone that does not parse or never fires, its subclass
:class:`~tarry.errors.InvalidCron`. Both carry ``step_id`` when the caller passed one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import InvalidArgument, InvalidCron, InvalidDuration

__all__ = ["UNITS", "Spec", "describe_spec", "resolve_wake_at", "validate_spec"]

Spec = int | float | timedelta | datetime | Mapping[str, object]
"""What callers may pass (the mapping being ``{"amount", "unit"}`` or ``{"cron", "tz"}``)."""

# unit name -> timedelta keyword. timedelta does the float arithmetic itself, exactly on the
# integral part and to the microsecond on the fraction, which ``amount * seconds`` would not.
UNITS: dict[str, str] = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), "milliseconds"),
    **dict.fromkeys(("s", "second", "seconds"), "seconds"),
    **dict.fromkeys(("m", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("h", "hour", "hours"), "hours"),
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("w", "week", "weeks"), "weeks"),
}
_CALENDAR_UNITS = frozenset({"mo", "mon", "month", "months", "y", "yr", "year", "years"})
_UNIT_HELP = "use one of ms, s, m, h, d, w or millisecond(s), second(s), minute(s), hour(s), day(s), week(s)"
_AMOUNT_KEYS = frozenset({"amount", "unit"})
_CRON_KEYS = frozenset({"cron", "tz"})
# Any fixed instant works to check that an expression parses and fires at all.
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
# At a fall-back, cronsim may hand back the first occurrence of an ambiguous local time while
# ``now`` is already in the second one (an instant in the past); asking again moves on. Two
# retries are enough for any real zone; the cap only guards against a cronsim change looping.
_MAX_CRON_RETRIES = 4


@dataclass(frozen=True, slots=True)
class _Cron:
    expr: str
    tz: str
    zone: ZoneInfo


def resolve_wake_at(spec: object, now: datetime, *, step_id: str | None = None) -> datetime:
    """The aware UTC instant at which a sleep/timeout given by ``spec`` ends, counted from ``now``.

    Args:
        spec: one of the forms in the module docstring.
        now: the current time, timezone-aware (the engine's clock, in UTC).
        step_id: named in the error, so the user finds the offending call.

    Raises:
        InvalidDuration: ``spec`` is not a duration, or it ends past ``datetime.max``.
        InvalidCron: the cron expression or time zone does not parse, or never fires.
        InvalidArgument: ``now`` is naive (an engine bug, not the user's).
    """
    if not _is_aware(now):
        raise InvalidArgument(
            f"resolve_wake_at() needs a timezone-aware now, got naive {now!r}; pass datetime.now(UTC)",
            now=repr(now),
        )
    now = now.astimezone(UTC)
    parsed = _parse(spec, step_id)
    if isinstance(parsed, datetime):
        return parsed.astimezone(UTC)
    if isinstance(parsed, _Cron):
        return _next_firing(spec, parsed, now, step_id)
    try:
        return now + parsed
    except OverflowError:
        raise InvalidDuration(
            spec, f"too large: {now.isoformat()} + {parsed} is past the year 9999", step_id=step_id
        ) from None


def validate_spec(spec: object, *, step_id: str | None = None) -> None:
    """Raise the error :func:`resolve_wake_at` would raise for ``spec``, without needing a clock.

    Raises:
        InvalidDuration: ``spec`` is not a duration.
        InvalidCron: the cron expression or time zone does not parse, or never fires.
    """
    parsed = _parse(spec, step_id)
    if isinstance(parsed, _Cron):
        _next_firing(spec, parsed, _REFERENCE, step_id)


def describe_spec(spec: object) -> str:
    """A short human form for logs and the dashboard: ``"30s"``, ``"1 hour"``, ``"cron '0 9 * * *' in UTC"``.

    Never raises: a spec that does not validate is shown as ``"invalid duration <repr>"``.
    """
    try:
        parsed = _parse(spec, None)
    except InvalidDuration:
        return f"invalid duration {spec!r}"
    if isinstance(parsed, datetime):
        return f"until {parsed.isoformat()}"
    if isinstance(parsed, _Cron):
        return f"cron {parsed.expr!r} in {parsed.tz}"
    if isinstance(spec, Mapping):
        amount, unit = spec["amount"], UNITS[str(spec["unit"])]
        # "1 hour" / "2 hours": name the unit in full; the plural form is the timedelta keyword.
        return f"{amount} {unit[:-1] if amount == 1 else unit}"
    if isinstance(spec, (int, float)):
        return f"{spec}s"
    return _describe_timedelta(parsed)


# -- parsing -----------------------------------------------------------------------------


def _parse(spec: object, step_id: str | None) -> timedelta | datetime | _Cron:
    """Check ``spec`` and reduce it to a relative delta, an absolute instant or a cron schedule."""
    # bool is an int subclass; True seconds is never what anyone meant.
    if isinstance(spec, bool):
        raise InvalidDuration(spec, "a bool is not a number of seconds", step_id=step_id)
    if isinstance(spec, (int, float)):
        _check_amount(spec, spec, step_id)
        return _to_timedelta(spec, spec, "seconds", step_id)
    if isinstance(spec, timedelta):
        if spec < timedelta(0):
            raise InvalidDuration(spec, "negative", step_id=step_id)
        return spec
    if isinstance(spec, datetime):
        if not _is_aware(spec):
            raise InvalidDuration(
                spec,
                "a naive datetime has no time zone; make it timezone-aware, "
                "e.g. datetime(..., tzinfo=UTC) or .replace(tzinfo=ZoneInfo('Europe/Berlin'))",
                step_id=step_id,
            )
        return spec
    if isinstance(spec, date):
        raise InvalidDuration(spec, "a date has no time of day; pass an aware datetime", step_id=step_id)
    if isinstance(spec, Mapping):
        return _parse_mapping(spec, step_id)
    if isinstance(spec, str):
        raise InvalidDuration(spec, "strings are not parsed as durations", step_id=step_id)
    raise InvalidDuration(
        spec, f"not a number, timedelta, datetime or dict (got {type(spec).__name__})", step_id=step_id
    )


def _parse_mapping(spec: Mapping[object, object], step_id: str | None) -> timedelta | _Cron:
    keys = set(spec)
    if "cron" in keys:
        if unknown := keys - _CRON_KEYS:
            raise InvalidDuration(
                spec, f"unknown key(s) {_listed(unknown)} next to 'cron' (allowed: cron, tz)", step_id=step_id
            )
        return _parse_cron(spec, step_id)
    if keys & _AMOUNT_KEYS:
        if unknown := keys - _AMOUNT_KEYS:
            raise InvalidDuration(spec, f"unknown key(s) {_listed(unknown)} (allowed: amount, unit)", step_id=step_id)
        if missing := _AMOUNT_KEYS - keys:
            raise InvalidDuration(spec, f"missing {_listed(missing)}", step_id=step_id)
        amount, unit = spec["amount"], spec["unit"]
        if not isinstance(unit, str):
            raise InvalidDuration(spec, f"unit must be a string, got {type(unit).__name__}", step_id=step_id)
        if unit not in UNITS:
            why = "months and years have no fixed length; use days, a cron or an aware datetime"
            raise InvalidDuration(
                spec,
                f"unknown unit {unit!r}; {why if unit.lower() in _CALENDAR_UNITS else _UNIT_HELP}",
                step_id=step_id,
            )
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise InvalidDuration(spec, f"amount is not a number (got {type(amount).__name__})", step_id=step_id)
        _check_amount(spec, amount, step_id)
        return _to_timedelta(spec, amount, UNITS[unit], step_id)
    if not keys:
        raise InvalidDuration(spec, 'empty dict; expected {"amount", "unit"} or {"cron"}', step_id=step_id)
    raise InvalidDuration(
        spec, f'unknown key(s) {_listed(keys)}; expected {{"amount", "unit"}} or {{"cron"}}', step_id=step_id
    )


def _parse_cron(spec: Mapping[object, object], step_id: str | None) -> _Cron:
    expr, tz = spec["cron"], spec.get("tz", "UTC")
    if not isinstance(expr, str):
        raise InvalidCron(spec, f"cron must be a string like '0 9 * * *', got {type(expr).__name__}", step_id=step_id)
    if not isinstance(tz, str):
        raise InvalidCron(spec, f"tz must be a string like 'Europe/Berlin', got {type(tz).__name__}", step_id=step_id)
    try:
        zone = ZoneInfo(tz)
    # ZoneInfoNotFoundError for unknown keys, ValueError for malformed ones ('', '../x', NUL),
    # IsADirectoryError for a region prefix such as 'Europe'.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidCron(
            spec, f"unknown time zone {tz!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'", step_id=step_id
        ) from None
    try:
        CronSim(expr, _REFERENCE.astimezone(zone))
    except CronSimError as exc:
        raise InvalidCron(
            spec,
            f"bad cron expression {expr!r}: {exc} (expected 5 fields: minute hour day-of-month month day-of-week)",
            step_id=step_id,
        ) from None
    return _Cron(expr, tz, zone)


def _next_firing(spec: object, cron: _Cron, now: datetime, step_id: str | None) -> datetime:
    # cronsim works on the zone's wall clock and returns an aware local datetime; it drops
    # microseconds and steps one second, so its answer is strictly after ``now`` except in the
    # fall-back case described at _MAX_CRON_RETRIES.
    schedule = CronSim(cron.expr, now.astimezone(cron.zone))
    try:
        for _ in range(_MAX_CRON_RETRIES):
            fire = next(schedule).astimezone(UTC)
            if fire > now:
                return fire
    except StopIteration:  # cronsim gives up after 50 years without a match
        raise InvalidCron(spec, f"cron expression {cron.expr!r} never fires", step_id=step_id) from None
    except OverflowError:
        raise InvalidDuration(spec, "the next firing is past the year 9999", step_id=step_id) from None
    raise InvalidCron(spec, f"could not find a firing of {cron.expr!r} after {now.isoformat()}", step_id=step_id)


def _check_amount(spec: object, amount: float, step_id: str | None) -> None:
    if isinstance(amount, float) and math.isnan(amount):
        raise InvalidDuration(spec, "not a number (NaN)", step_id=step_id)
    if isinstance(amount, float) and math.isinf(amount):
        raise InvalidDuration(spec, "infinite; a sleep must end", step_id=step_id)
    if amount < 0:
        raise InvalidDuration(spec, "negative", step_id=step_id)


def _to_timedelta(spec: object, amount: float, unit: str, step_id: str | None) -> timedelta:
    try:
        return timedelta(**{unit: amount})
    except OverflowError:
        raise InvalidDuration(spec, "too large (more than 999999999 days)", step_id=step_id) from None


# -- small pieces ---------------------------------------------------------------------------


def _is_aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def _listed(keys: Iterable[object]) -> str:
    return ", ".join(sorted(repr(k) for k in keys))


_NAMED_STEPS = (
    (timedelta(weeks=1), "week"),
    (timedelta(days=1), "day"),
    (timedelta(hours=1), "hour"),
    (timedelta(minutes=1), "minute"),
    (timedelta(seconds=1), "second"),
    (timedelta(milliseconds=1), "millisecond"),
)


def _describe_timedelta(delta: timedelta) -> str:
    """The largest unit that divides ``delta`` exactly: 2 hours, 90 seconds, 1500 microseconds."""
    for step, name in _NAMED_STEPS:
        count, rest = divmod(delta, step)
        if not rest and count:
            return f"{count} {name}{'' if count == 1 else 's'}"
    micros = delta // timedelta(microseconds=1)
    return f"{micros} microsecond{'' if micros == 1 else 's'}"
