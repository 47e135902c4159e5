"""The rows a run is made of: the run itself, its journal entries and its signal inbox.

These are the records the store persists and the runtime replays. Values that users see
(payload, outputs, errors, pending waits) are held here as JSON text, encoded once by
:mod:`tarry.codec` when they are produced and decoded when read: the store never encodes
anything and never sees workflow code.

Journal entry kinds and their life cycle::

    step    [retrying ->] completed | failed
                                        written when the step has finished; a failed attempt
                                        that will be retried is written as ``retrying`` with
                                        every failure so far and the next attempt's time
    sleep   waiting -> completed        written when the sleep starts (with its wake time)
    event   waiting -> completed        written when the wait starts; completed with the
                                        signal's payload, or with None on timeout
    now     completed                   ctx.now(), recorded so that replay sees the same
    uuid    completed                   ctx.uuid(), likewise
    child   waiting -> completed | failed   ctx.child: written when the child starts, ended
                                        with its outcome; ctx.start_child: completed at once
    patch   completed                   ctx.patched(): the marker that this run took a
                                        change's new code path

Times are UNIX epoch seconds (floats) at this level; the public views turn them into
aware UTC datetimes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from .errors import IdempotencyConflict, InvalidArgument

__all__ = [
    "ACTIVE",
    "STATUSES",
    "TERMINAL",
    "new_run_id",
    "PRUNE_BATCH",
    "Plan",
    "RunTree",
    "descendant_range",
    "decode_tags",
    "descendants_of",
    "encode_tags",
    "prune_filter",
    "same_signal",
    "same_trigger",
    "tag_pattern",
    "run_filter",
    "EntryRow",
    "RunRow",
    "SignalRow",
    "AuditRow",
    "Write",
    "cancel_audit",
    "retry_audit",
    "trigger_audit",
]

#: Statuses a run never leaves.
TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: Statuses of a run that still has work ahead of it.
ACTIVE = frozenset({"running", "suspended"})
#: Every status, in the order a run passes through them.
STATUSES = ("running", "suspended", "completed", "failed", "cancelled")


def run_filter(
    status: str | Iterable[str] | None, *, limit: int | None = None, offset: int = 0, waiting: str | None = None
) -> list[str] | None:
    """Check the filters of a run listing (the Runtime's and the Client's); return the
    statuses as a list (``None``: any).

    Raises:
        InvalidArgument: an unknown status or ``waiting``, a negative limit or offset.
    """
    statuses = [status] if isinstance(status, str) else (list(status) if status is not None else None)
    for s in statuses or ():
        if s not in STATUSES:
            raise InvalidArgument(f"unknown status {s!r}; use one of {', '.join(STATUSES)}")
    if waiting not in (None, "event", "sleep"):
        raise InvalidArgument(f"waiting must be 'event', 'sleep' or None, not {waiting!r}")
    if (limit is not None and limit < 0) or offset < 0:
        raise InvalidArgument("limit and offset must be >= 0")
    return statuses


@dataclass(slots=True)
class RunRow:
    run_id: str
    workflow_id: str
    status: str
    payload: str  # JSON text of the validated payload
    created_at: float
    updated_at: float
    output: str | None = None  # JSON text
    error: str | None = None  # JSON text: {"type", "message", "traceback", "code"?, "step_id"?}
    pending: str | None = None  # JSON text: {"kind": "sleep"|"event", "step": ..., ...}
    wake_at: float | None = None  # when a sleep ends or an event wait times out
    wait_event: str | None = None  # the event name a suspended run waits for
    cancel_reason: str | None = None  # set when a cancel was asked for (by any process)
    attempt: int = 1  # 1 + the number of retry() calls
    last_step: str | None = None  # the step id of the latest journal entry written
    parent_run_id: str | None = None  # the run that started this one with ctx.child
    forked_from: str | None = None  # the run a retry(from_step=...) copied this one from
    #: Times recovery picked the run up (``running``, no live process) at journal mark
    #: ``recovery_mark`` without it getting further; reset by progress and by retry().
    recoveries: int = 0
    recovery_mark: int | None = None
    #: The W3C ``traceparent`` of the span current when the run was triggered (its
    #: activations' spans join that trace, even after a restart).
    traceparent: str | None = None
    tags: str | None = None  # its workflow's tags when it was created: see encode_tags


def encode_tags(tags: tuple[str, ...]) -> str | None:
    """A run's tags as stored: ``",approval,billing,"`` (sorted, each between commas), or
    ``None`` for none. One text column, not a JSON array: a filter on one tag is the same
    ``tags LIKE '%,billing,%'`` in SQLite and PostgreSQL, with no JSON function, and a run
    row is read whole without a join (a ``run_tags`` table would cost a write per tag on
    the trigger path). Tags never hold a comma (:func:`tarry.workflow.check_tags`)."""
    return "," + ",".join(sorted(tags)) + "," if tags else None


def decode_tags(text: str | None) -> tuple[str, ...]:
    """The tags :func:`encode_tags` stored, sorted."""
    return tuple(t for t in text.split(",") if t) if text else ()


def tag_pattern(tag: str) -> str:
    """The ``LIKE ... ESCAPE '\\'`` pattern of runs carrying ``tag``."""
    return "%," + tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ",%"


@dataclass(slots=True)
class EntryRow:
    run_id: str
    seq: int
    step_id: str
    kind: str
    status: str
    started_at: float
    finished_at: float | None = None
    output: str | None = None  # JSON text
    error: str | None = None  # JSON text
    detail: str | None = None  # JSON text: kind-specific facts (wake_at, event, timed_out ...)
    attempts: int = 1


@dataclass(slots=True)
class SignalRow:
    id: int
    run_id: str
    event: str
    payload: str  # JSON text
    sent_at: float
    consumed_at: float | None = None
    consumed_by: str | None = None  # the step id of the wait that took it
    sent_by: str | None = None  # who sent it (``user@host``, ``--as``, ``identity=``); None: the engine
    #: Not stored: True when add_signal found this signal by its dedup key instead of adding it.
    duplicate: bool = False
    #: Not stored (nor compared): the run's ``wait_event`` when add_signal added it.
    run_waits_for: str | None = field(default=None, compare=False)


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The range ``[low, high)`` of the strings that start with ``prefix``, in code point
    order (SQLite's BINARY collation, PostgreSQL's ``"C"``): ``prefix`` itself up to
    ``prefix`` with its last character raised by one (``None``: no upper bound, for a
    prefix of nothing but U+10FFFF). A range on the key is an index seek, where LIKE is
    case-insensitive or collation-bound and scans."""
    for cut in range(len(prefix), 0, -1):
        point = ord(prefix[cut - 1]) + 1
        if point == 0xD800:  # surrogates are not text: the next character is U+E000
            point = 0xE000
        if point <= 0x10FFFF:
            return prefix, prefix[: cut - 1] + chr(point)
    return prefix, None


def waited_events(wait_event: str | None) -> list[str]:
    """The event names a run's ``wait_event`` stands for (a multi-event wait joins them with
    ``\x1f``); empty when it waits for none."""
    return wait_event.split("\x1f") if wait_event else []


def delivery(signal: SignalRow) -> str:
    """What became of a signal add_signal returned: ``deduplicated`` (its dedup key was
    used before: nothing added), ``delivered`` (the run was waiting for its event: its wait
    takes it) or ``buffered`` (kept in the inbox until a wait for its event)."""
    if signal.duplicate:
        return "deduplicated"
    return "delivered" if signal.event in waited_events(signal.run_waits_for) else "buffered"


@dataclass(slots=True)
class AuditRow:
    """Who asked for what of a run, and when: ``action`` is ``trigger``, ``cancel`` or
    ``retry`` (a signal's sender is on its own row, :attr:`SignalRow.sent_by`); ``detail``
    is JSON text (a cancel's ``reason``, a retry's ``attempt`` or ``from_step``...)."""

    run_id: str
    action: str
    by: str
    at: float
    detail: str | None = None


@dataclass(slots=True)
class Write:
    """One atomic change to one run, committed by the store as a unit (or not at all).

    ``run`` maps run columns to new values (``updated_at`` is always set). ``require``
    makes the write conditional on the run's current status; ``consume`` marks signals as
    taken by a wait and fails the whole write when one was already taken. ``truncate_from``
    deletes journal entries from that position on (used by retry). ``signals`` are sent to
    other runs in the same transaction, as ``(run_id, event, payload JSON)`` (a child's
    outcome to its parent). ``audit`` rows are inserted with it (who asked for the change).
    ``delete`` removes the run and everything of it.
    """

    run_id: str
    updated_at: float
    run: dict[str, Any] = field(default_factory=dict)
    entries: list[EntryRow] = field(default_factory=list)
    consume: list[tuple[int, str]] = field(default_factory=list)  # (signal id, step id)
    truncate_from: int | None = None
    require: frozenset[str] | None = None
    signals: list[tuple[str, str, str]] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    #: Delete the run with its journal, signals and change rows (once ``require`` holds);
    #: its audit trail stays, and ``audit`` rows are added to it; nothing else applies.
    delete: bool = False


@dataclass(slots=True)
class RunTree:
    """What a transition (:mod:`tarry.lifecycle`) reads of a run, in the transaction
    that applies it.

    ``journal`` is filled only for transitions that need it (retry); ``descendants``
    only for those that reach children (cancel): every run started by the run, by its
    children, and so on (active or not), parents before their children.
    """

    root: RunRow
    journal: list[EntryRow] = field(default_factory=list)
    descendants: list[RunRow] = field(default_factory=list)


#: A transition as a store applies it: the tree in, the writes out (or a typed error,
#: raised before anything is written). Built by :mod:`tarry.lifecycle`.
Plan = Callable[[RunTree], list[Write]]


def descendants_of(root_id: str, candidates: Iterable[RunRow]) -> list[RunRow]:
    """The runs of ``candidates`` whose chain of ``parent_run_id`` reaches ``root_id``,
    parents before their children. A child's id starts with its parent's and ``":"``, so
    a store reads the candidates as one range of the primary key; this keeps only real
    descendants (a run someone named ``"<root>:x"`` by hand is not one)."""
    by_parent: dict[str, list[RunRow]] = {}
    for row in candidates:
        if row.parent_run_id is not None:
            by_parent.setdefault(row.parent_run_id, []).append(row)
    found: list[RunRow] = []
    level = [root_id]
    while level:
        children = [row for parent in level for row in by_parent.get(parent, ())]
        found.extend(children)
        level = [row.run_id for row in children]
    return found


def descendant_range(run_id: str) -> tuple[str, str]:
    """The half-open key range ``[low, high)`` that holds every descendant's run id."""
    return run_id + ":", run_id + ";"  # ";" is the character after ":"


def trigger_audit(row: RunRow, by: str | None, from_step: str | None = None) -> AuditRow | None:
    """The audit row of a run ``by`` asked for (a fork's names the run and step it copied)."""
    if by is None:
        return None
    fork = {"forked_from": row.forked_from, "from_step": from_step}
    detail = None if row.forked_from is None else orjson.dumps(fork).decode()
    return AuditRow(row.run_id, "trigger", by, row.created_at, detail)


def cancel_audit(run_id: str, by: str, at: float, reason: str) -> AuditRow:
    return AuditRow(run_id, "cancel", by, at, orjson.dumps({"reason": reason}).decode())


def retry_audit(run_id: str, by: str, at: float, attempt: int) -> AuditRow:
    return AuditRow(run_id, "retry", by, at, orjson.dumps({"attempt": attempt}).decode())


#: Runs a prune deletes per transaction (a big prune never holds the write lock long).
PRUNE_BATCH = 500


def prune_filter(older_than: Any, status: str | Iterable[str] | None) -> tuple[float, list[str]]:
    """Check ``prune``'s arguments (the Runtime's and the Client's): ``older_than`` in
    seconds, and the statuses to prune (default: every ended one).

    Raises:
        InvalidArgument: a negative or non-numeric age, or a status that is not an ended one.
    """
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise InvalidArgument(f"older_than must be a timedelta or a number of seconds >= 0, not {older_than!r}")
    statuses = sorted(TERMINAL) if status is None else ([status] if isinstance(status, str) else list(status))
    for s in statuses:
        if s not in TERMINAL:
            raise InvalidArgument(f"prune deletes ended runs only; {s!r} is not one of {', '.join(sorted(TERMINAL))}")
    return float(seconds), statuses


def same_trigger(existing: RunRow, payload: str) -> None:
    """A trigger with an existing run's id must carry the same payload (compared as JSON
    values, so key order does not matter).

    Raises:
        IdempotencyConflict: it does not; nothing is written.
    """
    if existing.payload != payload and orjson.loads(existing.payload) != orjson.loads(payload):
        raise IdempotencyConflict(
            existing.run_id,
            "a run with this id exists already, with another payload",
            "a repeated trigger must carry the same payload (or use a new run id)",
        )


def same_signal(existing: SignalRow, event: str, payload: str, dedup_key: str) -> SignalRow:
    """A signal whose ``dedup_key`` the run's inbox already holds: the stored one, marked
    ``duplicate``, if it carries the same event and payload.

    Raises:
        IdempotencyConflict: another event or payload under the same key; nothing is written.
    """
    if existing.event != event or (
        existing.payload != payload and orjson.loads(existing.payload) != orjson.loads(payload)
    ):
        raise IdempotencyConflict(
            existing.run_id,
            f"signal dedup_key {dedup_key!r} was used already for another event or payload",
            "a repeated signal must carry the same event and payload (or use a new dedup_key)",
        )
    existing.duplicate = True
    return existing


def new_run_id() -> str:
    """A new run id: a UUIDv7 (RFC 9562) as 32 lowercase hex digits.

    Its first 48 bits are the creation time in milliseconds, so ids sort by creation time
    (to the millisecond, across processes) and the runs and journal rows of recent runs
    sit together at the end of their B-trees: a group commit of 50 runs' writes touches
    a few pages instead of 50 scattered ones (W1 conc +8 % over random uuid4 ids). The
    other 74 bits are random (``os.urandom``), so ids stay unguessable and collision-free.
    """
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    value = (
        (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (rand >> 68) << 64  # rand_a: 12 bits
        | 0b10 << 62  # variant (RFC 9562)
        | rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    )
    return f"{value:032x}"
