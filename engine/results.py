"""What callers get back about runs: RunResult, RunInfo and their parts.

All are frozen dataclasses with ``to_dict()`` giving JSON-ready dicts whose keys are the
field names (times as ISO 8601 UTC strings). These keys are what the CLI's ``--json``
prints; they are stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from . import codec
from .errors import RunCancelled, RunFailed
from .journal import AuditRow, EntryRow, RunRow, SignalRow, decode_tags

__all__ = ["AuditInfo", "HistoryEntry", "RunError", "RunInfo", "RunResult", "SignalInfo", "outcome"]


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _to_dict(self: Any) -> dict[str, Any]:
    """JSON-ready: the fields by name, datetimes as ISO 8601 strings."""
    return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run or a step failed: the exception's type name, message and traceback.

    ``code`` is set for tarry's own errors (e.g. ``nondeterministic_replay``); ``step_id``
    names the step whose failure ended the run, if a step did.
    """

    to_dict = _to_dict

    type: str
    message: str
    traceback: str = ""
    code: str | None = None
    step_id: str | None = None

    @classmethod
    def from_json(cls, text: str | None) -> RunError | None:
        data = codec.loads(text)
        if data is None:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _pending(text: str | None) -> dict[str, Any] | None:
    data = codec.loads(text)
    if data is None:
        return None
    for key in ("wake_at", "deadline"):
        if key in data:
            data[key] = _dt(data[key])
    return data  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class RunResult:
    """Where a run stands: returned by ``trigger``, ``sweep``, ``cancel``, ``retry``.

    ``status`` is one of ``running``, ``suspended``, ``completed``, ``failed``,
    ``cancelled``. ``pending`` says why a suspended run waits::

        {"kind": "sleep", "step": "settle", "wake_at": datetime}
        {"kind": "event", "step": "review", "event": "review-decision", "deadline": datetime | None}
        {"kind": "event", ..., "events": ["approved", "rejected"]}          # ctx.wait_for_any
        {"kind": "retry", "step": "charge", "wake_at": datetime, "attempt": 3}
        {"kind": "child", "step": "invoice", "child_run_id": "..."}

    ``parent_run_id`` names the run that started this one with ``ctx.child``.
    """

    to_dict = _to_dict

    run_id: str
    workflow_id: str
    status: str
    output: Any = None
    error: RunError | None = None
    pending: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: The step id of the latest journal entry (the step in progress is not recorded).
    last_step: str | None = None
    parent_run_id: str | None = None
    #: The run a ``retry(..., from_step=...)`` copied this one from.
    forked_from: str | None = None
    #: Its workflow's tags when it was created, sorted.
    tags: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: RunRow) -> RunResult:
        return cls(
            run_id=row.run_id,
            workflow_id=row.workflow_id,
            status=row.status,
            output=codec.loads(row.output),
            error=RunError.from_json(row.error),
            pending=_pending(row.pending),
            created_at=_dt(row.created_at),
            updated_at=_dt(row.updated_at),
            last_step=row.last_step,
            parent_run_id=row.parent_run_id,
            forked_from=row.forked_from,
            tags=decode_tags(row.tags),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One journal entry: a step, sleep, event wait, child run, patch marker, or a
    recorded ``now``/``uuid``.

    ``status`` is ``completed`` or ``failed`` (steps, children), ``retrying`` between a
    step's attempts, ``waiting`` while a sleep, wait or child is in progress. ``detail``
    holds kind-specific facts: ``wake_at`` of a sleep; ``event`` (``events``,
    ``received``), ``deadline``, ``signal_id``, ``sent_by``, ``sent_at`` and ``timed_out``
    of an event wait;
    ``failures`` (every failed attempt: ``attempt``, ``started_at``, ``finished_at``,
    ``type``, ``message``) and ``next_at`` of a retried step; ``child_run_id``,
    ``workflow_id`` and ``wait`` of a child.
    """

    to_dict = _to_dict

    seq: int
    step_id: str
    kind: str
    status: str
    output: Any
    error: RunError | None
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: EntryRow) -> HistoryEntry:
        detail = codec.loads(row.detail) or {}
        for key in ("wake_at", "deadline", "next_at"):
            if detail.get(key) is not None:
                detail[key] = _dt(detail[key])
        for failure in detail.get("failures", ()):
            for key in ("started_at", "finished_at"):
                failure[key] = _dt(failure[key])
        return cls(
            seq=row.seq,
            step_id=row.step_id,
            kind=row.kind,
            status=row.status,
            output=codec.loads(row.output),
            error=RunError.from_json(row.error),
            attempts=row.attempts,
            started_at=_dt(row.started_at),  # type: ignore[arg-type]
            finished_at=_dt(row.finished_at),
            detail=detail,
        )

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The step's failed attempts, oldest first (empty when its first attempt did)."""
        return list(self.detail.get("failures", ()))

    @property
    def child_run_id(self) -> str | None:
        """The child run a ``child`` entry started."""
        value = self.detail.get("child_run_id")
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class SignalInfo:
    """A signal in a run's inbox; ``consumed_by`` is the step id of the wait that took it,
    ``sent_by`` who sent it (``None``: the engine, e.g. a child's outcome)."""

    to_dict = _to_dict

    id: int
    event: str
    payload: Any
    sent_at: datetime
    consumed_at: datetime | None
    consumed_by: str | None
    sent_by: str | None = None

    @classmethod
    def from_row(cls, row: SignalRow) -> SignalInfo:
        return cls(
            id=row.id,
            event=row.event,
            payload=codec.loads(row.payload),
            sent_at=_dt(row.sent_at),  # type: ignore[arg-type]
            consumed_at=_dt(row.consumed_at),
            consumed_by=row.consumed_by,
            sent_by=row.sent_by,
        )


@dataclass(frozen=True, slots=True)
class AuditInfo:
    """Who asked for what of a run, and when: ``action`` is ``trigger``, ``cancel`` or
    ``retry``; ``detail`` holds a cancel's ``reason``, a retry's ``attempt``, a fork's
    ``forked_from`` and ``from_step``. (Who sent each signal is in :attr:`SignalInfo.sent_by`.)"""

    action: str
    by: str
    at: datetime
    detail: dict[str, Any]

    to_dict = _to_dict

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditInfo:
        return cls(row.action, row.by, _dt(row.at), codec.loads(row.detail) or {})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Everything about one run: returned by ``get_run``."""

    to_dict = _to_dict

    run_id: str
    workflow_id: str
    status: str
    payload: Any
    output: Any
    error: RunError | None
    pending: dict[str, Any] | None
    history: list[HistoryEntry]
    signals: list[SignalInfo]
    created_at: datetime
    updated_at: datetime
    attempt: int
    cancel_reason: str | None
    parent_run_id: str | None = None
    forked_from: str | None = None
    #: Who triggered, cancelled and retried the run, oldest first.
    audit: list[AuditInfo] = field(default_factory=list)
    tags: tuple[str, ...] = ()

    @classmethod
    def from_rows(
        cls, row: RunRow, entries: list[EntryRow], signals: list[SignalRow], audit: list[AuditRow] | None = None
    ) -> RunInfo:
        return cls(
            run_id=row.run_id,
            workflow_id=row.workflow_id,
            status=row.status,
            payload=codec.loads(row.payload),
            output=codec.loads(row.output),
            error=RunError.from_json(row.error),
            pending=_pending(row.pending),
            history=[HistoryEntry.from_row(e) for e in entries],
            signals=[SignalInfo.from_row(s) for s in signals],
            created_at=_dt(row.created_at),  # type: ignore[arg-type]
            updated_at=_dt(row.updated_at),  # type: ignore[arg-type]
            attempt=row.attempt,
            cancel_reason=row.cancel_reason,
            parent_run_id=row.parent_run_id,
            forked_from=row.forked_from,
            audit=[AuditInfo.from_row(a) for a in audit or ()],
            tags=decode_tags(row.tags),
        )

    @property
    def children(self) -> list[str]:
        """The run ids of the child runs this run started, in journal order."""
        return [e.child_run_id for e in self.history if e.kind == "child" and e.child_run_id is not None]

    @property
    def result(self) -> RunResult:
        last = self.history[-1].step_id if self.history else None
        return RunResult(
            self.run_id,
            self.workflow_id,
            self.status,
            self.output,
            self.error,
            self.pending,
            self.created_at,
            self.updated_at,
            last,
            self.parent_run_id,
            self.forked_from,
            self.tags,
        )


def outcome(row: RunRow) -> Any:
    """What ``result()`` gives for an ended run: its output if it completed.

    Raises:
        RunFailed: it failed (the run's error attached).
        RunCancelled: it was cancelled (``reason`` is the cancel's).
    """
    if row.status == "failed":
        error = RunError.from_json(row.error) or RunError("Error", "the run failed without a recorded error")
        raise RunFailed(row.run_id, row.workflow_id, error)
    if row.status == "cancelled":
        raise RunCancelled(row.run_id, row.cancel_reason)
    return codec.loads(row.output)
