"""RunContext: the ``ctx`` a workflow's run function is given.

Every durable call (``step``, ``sleep``, ``wait_for_event``, ``now``, ``uuid``) has an id
that is unique within the run. The first time a run reaches a call, the call does its work
and its result is journaled (committed) before the workflow goes on; when a run is replayed
(after it was passivated, after a restart, after a retry) a call already in the journal
returns the recorded result without doing the work again.

Replay checks that the code still matches the journal: the n-th durable call must have the
id and kind of the n-th entry, ids must not repeat, and a finished workflow must have
replayed its whole journal. A mismatch fails the run with :class:`NonDeterministicReplay`
or :class:`DuplicateStepId`; ``runtime.retry()`` re-drives it once the code is fixed.

Durable calls of one run are made one at a time (await each before the next); two at once
raise :class:`ConcurrentContextUse`. For parallel work, trigger separate runs.

This module knows no SQL and no scheduling: it asks its actor for both.
"""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import codec
from .durations import resolve_wake_at, validate_spec
from .errors import (
    ConcurrentContextUse,
    DuplicateStepId,
    InvalidArgument,
    NonDeterministicReplay,
    StepFailed,
)
from .journal import EntryRow
from .results import RunError
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .actor import RunActor

__all__ = ["RunContext"]

P = TypeVar("P")


def _describe(entry: EntryRow | None) -> str | None:
    return None if entry is None else f"{entry.kind} {entry.step_id!r}"


class RunContext(Generic[P]):
    """The durable API inside a workflow.

    Attributes:
        payload: the validated payload (a model instance when the workflow has a schema).
        run_id: this run's id.
        workflow_id: the workflow's id.
        attempt: 1, plus one per ``runtime.retry()`` of this run.
    """

    __slots__ = ("_actor", "_busy", "_counters", "_cursor", "_seen", "attempt", "payload", "run_id", "workflow_id")

    def __init__(self, actor: RunActor, payload: P, *, run_id: str, workflow_id: str, attempt: int) -> None:
        self._actor = actor
        self._cursor = 0
        self._seen: set[str] = set()
        self._busy: str | None = None
        self._counters: dict[str, int] = {}
        self.payload = payload
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.attempt = attempt

    # -- replay bookkeeping ------------------------------------------------------------------

    def _begin(self, step_id: str, kind: str) -> tuple[int, EntryRow | None]:
        """Claim the next journal position for ``kind step_id``; return it and what the
        journal recorded there (``None`` when the call is new)."""
        self._actor.check_open()
        if not isinstance(step_id, str) or not step_id:
            raise InvalidArgument(f"run {self.run_id!r}: a step id must be a non-empty string, not {step_id!r}")
        if self._busy is not None:
            raise self._actor.fatal(ConcurrentContextUse(self.run_id, step_id, self._busy))
        if step_id in self._seen:
            raise self._actor.fatal(DuplicateStepId(self.run_id, step_id))
        seq = self._cursor
        journal = self._actor.journal
        recorded = journal[seq] if seq < len(journal) else None
        if recorded is not None and (recorded.step_id != step_id or recorded.kind != kind):
            raise self._actor.fatal(
                NonDeterministicReplay(self.run_id, seq, _describe(recorded), f"{kind} {step_id!r}")
            )
        self._seen.add(step_id)
        self._cursor += 1
        self._busy = step_id
        return seq, recorded

    def _end(self) -> None:
        self._busy = None

    def unreplayed(self) -> EntryRow | None:
        """The first journal entry the code did not reach (``None`` if it reached all)."""
        journal = self._actor.journal
        return journal[self._cursor] if self._cursor < len(journal) else None

    @property
    def position(self) -> int:
        return self._cursor

    # -- the durable calls -------------------------------------------------------------------

    async def step(
        self,
        step_id: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retry: RetryPolicy | int | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` once for this run and return its (JSON) result.

        ``fn`` may be async or sync; a sync function runs in a worker thread so that it
        cannot block other runs (if it returns an awaitable, that is awaited too).

        Args:
            step_id: unique within the run; the journal key of the result.
            retry: attempts and backoff (an int is a number of attempts); defaults to the
                workflow's ``retry``.
            timeout: seconds one attempt may take; a slower attempt fails with
                ``TimeoutError`` (and is retried per ``retry``).

        Returns:
            The JSON form of ``fn``'s result, on the first execution as on replay.

        Raises:
            StepFailed: ``fn`` raised on its last attempt (``error_type`` names the
                original exception, which is also ``__cause__`` on the first execution).
            NotSerializable: the result is not JSON; the run fails with it.

        Guarantees:
            The result is committed before this returns. A step that was interrupted
            before its result was committed (crash, kill) runs again on recovery: steps
            are at-least-once. Make external effects idempotent with
            ``ctx.idempotency_key(step_id)``.
        """
        policy = RetryPolicy.coerce(retry, self._actor.workflow.retry)
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise InvalidArgument(f"step {step_id!r}: timeout must be a number of seconds > 0, not {timeout!r}")
        seq, recorded = self._begin(step_id, "step")
        try:
            if recorded is not None:
                return self._replayed(recorded)
            return await self._actor.run_step(seq, step_id, fn, args, kwargs, policy, timeout)
        finally:
            self._end()

    def _replayed(self, entry: EntryRow) -> Any:
        if entry.status == "failed":
            error = RunError.from_json(entry.error)
            assert error is not None
            raise StepFailed(self.run_id, entry.step_id, error.type, error.message, entry.attempts, error.traceback)
        return codec.loads(entry.output)

    async def sleep(self, step_id: str, duration: Any) -> None:
        """Suspend the run durably for ``duration``.

        ``duration``: seconds, a ``timedelta``, ``{"amount": 1, "unit": "hours"}``,
        ``{"cron": "0 9 * * *", "tz": "Europe/Berlin"}`` (until the next firing) or an
        aware ``datetime`` (until then).

        Guarantees:
            The wake time is fixed and committed when the sleep starts; a replay or a
            restart never extends it. An overdue sleep (the process was down) ends as soon
            as the run is recovered.

        Raises:
            InvalidDuration, InvalidCron: the run fails with them (nothing is journaled).
        """
        validate_spec(duration, step_id=step_id if isinstance(step_id, str) else None)
        seq, recorded = self._begin(step_id, "sleep")
        try:
            wake_at = None
            if recorded is None:
                now = datetime.fromtimestamp(self._actor.now(), UTC)
                wake_at = resolve_wake_at(duration, now, step_id=step_id).timestamp()
            await self._actor.sleep(seq, step_id, recorded, wake_at)
        finally:
            self._end()

    async def wait_for_event(self, step_id: str, event: str, *, timeout: Any = None) -> Any:
        """Suspend until a signal named ``event`` arrives; return its payload.

        Args:
            timeout: as ``sleep``'s duration; ``None`` waits for ever.

        Returns:
            The signal's payload, or ``None`` if the timeout passed first.

        Guarantees:
            Signals are kept in the run's inbox when sent: one sent before the run reached
            this wait is consumed by it (the oldest first). A signal is consumed by exactly
            one wait, in the same commit that journals the wait's result.
        """
        if not isinstance(event, str) or not event:
            raise InvalidArgument(f"run {self.run_id!r}: an event name must be a non-empty string, not {event!r}")
        if timeout is not None:
            validate_spec(timeout, step_id=step_id if isinstance(step_id, str) else None)
        seq, recorded = self._begin(step_id, "event")
        try:
            deadline = None
            if recorded is None and timeout is not None:
                now = datetime.fromtimestamp(self._actor.now(), UTC)
                deadline = resolve_wake_at(timeout, now, step_id=step_id).timestamp()
            return await self._actor.wait_for_event(seq, step_id, recorded, event, deadline)
        finally:
            self._end()

    async def now(self, step_id: str | None = None) -> datetime:
        """The current time (aware, UTC), recorded: a replay returns the same instant."""
        value = await self._recorded_value("now", step_id, lambda: self._actor.now())
        return datetime.fromtimestamp(value, UTC)

    async def uuid(self, step_id: str | None = None) -> str:
        """A random UUID4 string, recorded: a replay returns the same value."""
        return await self._recorded_value("uuid", step_id, lambda: str(_uuid.uuid4()))  # type: ignore[no-any-return]

    async def _recorded_value(self, kind: str, step_id: str | None, make: Callable[[], Any]) -> Any:
        if step_id is None:
            n = self._counters[kind] = self._counters.get(kind, 0) + 1
            step_id = f"{kind}#{n}"
        seq, recorded = self._begin(step_id, kind)
        try:
            if recorded is not None:
                return codec.loads(recorded.output)
            return await self._actor.record_value(seq, step_id, kind, make())
        finally:
            self._end()

    def idempotency_key(self, step_id: str) -> str:
        """``"{run_id}:{step_id}"``: stable across retries, replays and restarts. Pass it to
        external APIs (payments, e-mail) so that a step that runs twice acts once."""
        return f"{self.run_id}:{step_id}"

    def __repr__(self) -> str:
        return f"<RunContext run={self.run_id!r} workflow={self.workflow_id!r}>"
