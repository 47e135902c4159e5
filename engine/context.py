"""RunContext: the ``ctx`` a workflow's run function is given.

Every durable call (``step``, ``sleep``, ``wait_for_event``, ``wait_for_any``, ``child``,
``start_child``, ``now``, ``uuid``) has an id that is unique within the run. The first time
a run reaches a call, the call does its work and its result is journaled (committed) before
the workflow goes on; when a run is replayed (after it was passivated, after a restart,
after a retry) a call already in the journal returns the recorded result without doing the
work again.

Replay checks that the code still matches the journal: the n-th durable call must have the
id and kind of the n-th entry, ids must not repeat, and a finished workflow must have
replayed its whole journal. A mismatch fails the run with :class:`NonDeterminismError` or
:class:`DuplicateStepId`; ``retry()`` resumes it once the code is fixed. ``ctx.patched``
lets new code take a new path while runs already past that point replay the old one.

Durable calls of one run are made one at a time (await each before the next); two at once
raise :class:`ConcurrentContextUse`. Steps that should run concurrently go through
``ctx.gather`` or ``ctx.parallel``, which give each its journal position in the order the
code names them, so that a replay matches whatever order they finished in.

This module knows no SQL and no scheduling: it asks its actor for both.
"""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Callable, Generator, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from . import codec
from .durations import resolve_wake_at, validate_spec
from .errors import (
    ConcurrentContextUse,
    DuplicateStepId,
    InvalidArgument,
    NonDeterminismError,
    StepFailed,
)
from .journal import EntryRow
from .limits import check_name
from .results import RunError
from .retry import Retry

if TYPE_CHECKING:
    from .actor import RunActor
    from .workflow import Workflow

__all__ = ["Parallel", "RunContext", "StepCall"]

P = TypeVar("P")

#: Event names of a multi-event wait are joined with this in the run's ``wait_event``.
EVENT_SEPARATOR = "\x1f"


def _describe(entry: EntryRow | None) -> str | None:
    return None if entry is None else f"{entry.kind} {entry.step_id!r}"


class StepCall:
    """A step not yet run: what ``ctx.step(...)`` returns. Await it to run it (the usual
    ``await ctx.step(...)``), or pass it to ``ctx.gather`` to run it beside others."""

    __slots__ = ("_awaited", "args", "ctx", "fn", "kwargs", "retry", "step_id", "timeout")

    def __init__(
        self,
        ctx: RunContext[Any],
        step_id: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retry: Retry | int | None,
        timeout: float | None,
    ) -> None:
        self.ctx = ctx
        self.step_id = step_id
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.retry = retry
        self.timeout = timeout
        self._awaited = False

    def _claim(self) -> None:
        if self._awaited:
            raise InvalidArgument(f"run {self.ctx.run_id!r}: step {self.step_id!r} was already awaited or gathered")
        self._awaited = True

    def __await__(self) -> Generator[Any, None, Any]:
        self._claim()
        return self.ctx._run_step(self).__await__()

    def __repr__(self) -> str:
        return f"<StepCall {self.step_id!r} of run {self.ctx.run_id!r}>"


class Parallel:
    """``async with ctx.parallel() as p:`` collects steps (``p.step(...)``, same arguments
    as ``ctx.step``) and runs them all concurrently when the block ends; ``p.results`` then
    holds their results in the order they were added. One failure cancels the others and is
    raised from the ``async with``. Make no other durable call inside the block."""

    __slots__ = ("_calls", "_ctx", "results")

    def __init__(self, ctx: RunContext[Any]) -> None:
        self._ctx = ctx
        self._calls: list[StepCall] = []
        self.results: list[Any] = []

    def step(
        self,
        step_id: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retry: Retry | int | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> int:
        """Add a step; returns its index in ``results``."""
        self._calls.append(self._ctx.step(step_id, fn, *args, retry=retry, timeout=timeout, **kwargs))
        return len(self._calls) - 1

    async def __aenter__(self) -> Parallel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.results = await self._ctx.gather(*self._calls)


class RunContext(Generic[P]):
    """The durable API inside a workflow.

    Attributes:
        payload: the validated payload (a model instance when the workflow has a schema).
        run_id: this run's id.
        workflow_id: the workflow's id.
        attempt: 1, plus one per ``retry()`` of this run.
        parent_run_id: the run that started this one with ``ctx.child`` (else ``None``).
        last_signal_sender: who sent the signal the latest ``wait_for_event`` or
            ``wait_for_any`` took (``user@host``, a ``Client(identity=...)``, ``tarry
            signal --as NAME``); ``None`` before any wait, after a timeout, or for a signal
            the engine sent. Journaled with the wait, so a replay sees the same sender.
    """

    __slots__ = (
        "_actor",
        "_busy",
        "_counters",
        "_cursor",
        "_seen",
        "attempt",
        "last_signal_sender",
        "parent_run_id",
        "payload",
        "run_id",
        "workflow_id",
    )

    def __init__(
        self,
        actor: RunActor,
        payload: P,
        *,
        run_id: str,
        workflow_id: str,
        attempt: int,
        parent_run_id: str | None = None,
    ) -> None:
        self._actor = actor
        self._cursor = 0
        self._seen: set[str] = set()
        self._busy: str | None = None
        self._counters: dict[str, int] = {}
        self.payload = payload
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.attempt = attempt
        self.parent_run_id = parent_run_id
        self.last_signal_sender: str | None = None

    # -- replay bookkeeping ------------------------------------------------------------------

    def _check_id(self, step_id: Any) -> None:
        check_name("step id", step_id, run_id=self.run_id)

    def _reserve(self, step_id: str, kind: str) -> tuple[int, EntryRow | None]:
        """Claim the next journal position for ``kind step_id``; return it and what the
        journal recorded there (``None`` when the call is new)."""
        self._check_id(step_id)
        if step_id in self._seen:
            raise self._actor.fatal(DuplicateStepId(self.run_id, step_id))
        seq = self._cursor
        recorded = self._actor.recorded(seq)
        if recorded is not None and (recorded.step_id != step_id or recorded.kind != kind):
            raise self._actor.fatal(
                NonDeterminismError(self.run_id, seq, _describe(recorded), f"{kind} {step_id!r}", step_id=step_id)
            )
        self._seen.add(step_id)
        self._cursor += 1
        return seq, recorded

    def _begin(self, step_id: str, kind: str) -> tuple[int, EntryRow | None]:
        self._actor.check_open()
        self._check_id(step_id)
        if self._busy is not None:
            raise self._actor.fatal(ConcurrentContextUse(self.run_id, step_id, self._busy))
        reserved = self._reserve(step_id, kind)
        self._busy = step_id
        return reserved

    def _end(self) -> None:
        self._busy = None

    def unreplayed(self) -> EntryRow | None:
        """The first journal entry the code did not reach (``None`` if it reached all)."""
        return self._actor.recorded_from(self._cursor)

    @property
    def position(self) -> int:
        return self._cursor

    # -- steps -------------------------------------------------------------------------------

    def step(
        self,
        step_id: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retry: Retry | int | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> StepCall:
        """Run ``fn(*args, **kwargs)`` once for this run; ``await`` it for its (JSON) result.

        ``fn`` may be async or sync; a sync function runs in a worker thread so that it
        cannot block other runs (if it returns an awaitable, that is awaited too). An
        ``async def`` runs on trio; one marked :func:`asyncio_step` runs on an asyncio loop. A
        sync function's thread cannot be stopped: when the step is cancelled (its ``timeout``,
        the workflow's deadline, a cancel of the run, a worker stopping) the thread is
        abandoned at once. It finishes in the background and its result is dropped, never
        journaled; its side effect may still happen (at-least-once, as always).

        Args:
            step_id: unique within the run; the journal key of the result.
            retry: a :class:`Retry` (an int is a number of attempts); defaults to the
                workflow's ``retry``. Every failed attempt is journaled with its error and
                the wait before the next one is durable.
            timeout: seconds one attempt may take; a slower attempt is cancelled and fails
                with ``TimeoutError`` (and is retried per ``retry``). A sync function's
                thread is abandoned (see above), so give such functions their own
                timeouts too.

        Returns:
            (awaited) The JSON form of ``fn``'s result, on the first execution as on replay.

        Raises:
            StepFailed: ``fn`` raised on its last attempt (``error_type`` names the
                original exception, which is also ``__cause__`` on the first execution).
                :class:`NonRetryableError` from ``fn`` ends the retries at once.
            NotSerializable: the result is not JSON; the run fails with it.

        Guarantees:
            The result is committed before this returns. A step that was interrupted
            before its result was committed (crash, kill, a worker's stop past its grace)
            runs again on recovery: steps are at-least-once. A cancelled run's step is
            not run again, but an abandoned sync function may still finish its effect.
            Make external effects idempotent with ``ctx.idempotency_key(step_id)``.
        """
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise InvalidArgument(
                f"run {self.run_id!r}, step {step_id!r}: timeout must be a number of seconds > 0, not {timeout!r}"
            )
        if retry is not None:
            Retry.coerce(retry)  # a bad policy is the caller's error, raised here
        return StepCall(self, step_id, fn, args, kwargs, retry, timeout)

    async def _run_step(self, call: StepCall) -> Any:
        policy = self._actor.workflow.retry if call.retry is None else Retry.coerce(call.retry)
        seq, recorded = self._begin(call.step_id, "step")
        try:
            if recorded is not None and recorded.status != "retrying":
                return self._replayed(recorded)
            return await self._actor.run_step(seq, call, policy, recorded, in_place=False)
        finally:
            self._end()

    async def gather(self, *calls: StepCall) -> list[Any]:
        """Run steps concurrently; return their results in the order given::

            a, b = await ctx.gather(ctx.step("a", fetch, 1), ctx.step("b", fetch, 2))

        Each step is journaled on its own, at the position given by its place in the call,
        so a replay returns the recorded results whatever order they finished in. A
        retrying step waits out its backoff in place (durably: the next attempt's time is
        journaled).

        Raises:
            StepFailed: the first step to fail; the others are cancelled (a cancelled step
                has no result and runs again if the run is retried).
            InvalidArgument: something that is not a ``ctx.step(...)`` of this run.
        """
        for call in calls:
            if not isinstance(call, StepCall) or call.ctx is not self:
                raise InvalidArgument(
                    f"run {self.run_id!r}: ctx.gather takes ctx.step(...) calls of this run, not {call!r}"
                )
        self._actor.check_open()
        if self._busy is not None:
            first = calls[0].step_id if calls else "gather"
            raise self._actor.fatal(ConcurrentContextUse(self.run_id, first, self._busy))
        for call in calls:
            call._claim()
        reserved = [self._reserve(call.step_id, "step") for call in calls]
        self._busy = "gather(" + ", ".join(call.step_id for call in calls) + ")"
        results: list[Any] = [None] * len(calls)
        failures: list[BaseException] = []
        try:
            async with trio.open_nursery() as nursery:
                for i, (call, (seq, recorded)) in enumerate(zip(calls, reserved, strict=True)):
                    nursery.start_soon(self._branch, i, call, seq, recorded, results, failures, nursery.cancel_scope)
        finally:
            self._end()
        if failures:
            raise failures[0]
        return results

    async def _branch(
        self,
        i: int,
        call: StepCall,
        seq: int,
        recorded: EntryRow | None,
        results: list[Any],
        failures: list[BaseException],
        siblings: trio.CancelScope,
    ) -> None:
        try:
            if recorded is not None and recorded.status != "retrying":
                results[i] = self._replayed(recorded)
            else:
                policy = Retry.coerce(call.retry, self._actor.workflow.retry)
                results[i] = await self._actor.run_step(seq, call, policy, recorded, in_place=True)
        except Exception as exc:
            failures.append(exc)
            siblings.cancel()

    def parallel(self) -> Parallel:
        """A block that collects steps and runs them together as it ends (see :class:`Parallel`)::

        async with ctx.parallel() as p:
            for sku in ctx.payload["items"]:
                p.step(f"reserve-{sku}", reserve, sku)
        reserved = p.results
        """
        return Parallel(self)

    def _replayed(self, entry: EntryRow) -> Any:
        if entry.status == "failed":
            error = RunError.from_json(entry.error)
            assert error is not None
            raise StepFailed(self.run_id, entry.step_id, error.type, error.message, entry.attempts, error.traceback)
        return codec.loads(entry.output)

    # -- waits -------------------------------------------------------------------------------

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
        self._check_id(step_id)  # first: the duration's error names the step
        validate_spec(duration, step_id=step_id)
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
            The signal's payload, or ``None`` if the timeout passed first. Who sent it is
            then :attr:`last_signal_sender`::

                decision = await ctx.wait_for_event("review", "decision")
                approver = ctx.last_signal_sender   # "ana@laptop", or --as / identity=

        Guarantees:
            Signals are kept in the run's inbox when sent: one sent before the run reached
            this wait is consumed by it (the oldest first). A signal is consumed by exactly
            one wait, in the same commit that journals the wait's result.
        """
        received = await self._wait(step_id, [event], timeout)
        return None if received is None else received[1]

    async def wait_for_any(self, step_id: str, events: Iterable[str], *, timeout: Any = None) -> tuple[str, Any] | None:
        """Suspend until a signal named any of ``events`` arrives::

            decision = await ctx.wait_for_any("decision", ["approved", "rejected"], timeout={"amount": 2, "unit": "days"})
            if decision is None: ...            # timed out
            event, payload = decision

        Returns:
            ``(event, payload)`` of the first such signal (the oldest in the inbox), or
            ``None`` if the timeout passed first. Guarantees as ``wait_for_event``.
        """
        if isinstance(events, str):
            raise InvalidArgument(f"run {self.run_id!r}, wait {step_id!r}: events must be a list of names, not a str")
        return await self._wait(step_id, list(events), timeout)

    async def _wait(self, step_id: str, events: list[str], timeout: Any) -> tuple[str, Any] | None:
        self._check_id(step_id)
        if not events:
            raise InvalidArgument(f"run {self.run_id!r}, wait {step_id!r}: name at least one event")
        for event in events:
            # A name never holds EVENT_SEPARATOR: it is a control character.
            check_name("event name", event, run_id=self.run_id, step_id=step_id)
        if len(set(events)) != len(events):
            raise InvalidArgument(f"run {self.run_id!r}, wait {step_id!r}: event names repeat in {events!r}")
        if timeout is not None:
            validate_spec(timeout, step_id=step_id if isinstance(step_id, str) else None)
        seq, recorded = self._begin(step_id, "event")
        try:
            deadline = None
            if recorded is None and timeout is not None:
                now = datetime.fromtimestamp(self._actor.now(), UTC)
                deadline = resolve_wake_at(timeout, now, step_id=step_id).timestamp()
            received = await self._actor.wait_for_event(seq, step_id, recorded, tuple(events), deadline)
            self.last_signal_sender = None if received is None else received[2]
            return None if received is None else (received[0], received[1])
        finally:
            self._end()

    # -- child runs --------------------------------------------------------------------------

    async def child(self, step_id: str, workflow: Workflow[Any] | str, payload: Any = None) -> Any:
        """Start a child run of ``workflow`` and wait for its result::

            invoice = await ctx.child("invoice", make_invoice, {"order": order_id})

        The child is a run of its own (id ``"{run_id}:{step_id}"``, listed and shown like
        any other, linked to this run as its parent). This run suspends until it ends.
        Cancelling this run cancels its active children.

        Returns:
            The child's output.

        Raises:
            ChildFailed: the child ended ``failed`` or ``cancelled``.
            WorkflowNotFound, PayloadValidationError: the run fails with them (nothing
                is started).

        Guarantees:
            The child is started once (its id is derived from this run and step, so a
            replay or restart finds it instead of starting another); its outcome reaches
            this run in the same commit that ends the child.
        """
        seq, recorded = self._begin(step_id, "child")
        try:
            return await self._actor.child(seq, step_id, recorded, workflow, payload, wait=True)
        finally:
            self._end()

    async def start_child(self, step_id: str, workflow: Workflow[Any] | str, payload: Any = None) -> str:
        """Start a child run without waiting for it; return its run id (journaled, so a
        replay returns the same id and starts nothing). It is still cancelled with this run."""
        seq, recorded = self._begin(step_id, "child")
        try:
            return await self._actor.child(seq, step_id, recorded, workflow, payload, wait=False)  # type: ignore[no-any-return]
        finally:
            self._end()

    # -- versions ----------------------------------------------------------------------------

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the code path of change ``patch_id``::

            if ctx.patched("new-fraud-check"):
                await ctx.step("fraud-check-v2", check_v2, order)
            else:
                await ctx.step("fraud-check", check, order)

        A run that reaches this call for the first time takes the new path (``True``), and
        a marker in its journal keeps it there on every replay. A run that had already
        gone past this point under the old code (its journal has other entries here)
        replays the old path (``False``). Once no run in flight predates the change, remove
        the old branch and keep the ``patched`` call until those runs are pruned.
        """
        check_name("patch id", patch_id, run_id=self.run_id)
        self._actor.check_open()
        if self._busy is not None:
            raise self._actor.fatal(ConcurrentContextUse(self.run_id, f"patch:{patch_id}", self._busy))
        marker = f"patch:{patch_id}"
        recorded = self._actor.recorded(self._cursor)
        if recorded is not None and recorded.kind == "patch" and recorded.step_id == marker:
            self._seen.add(marker)
            self._cursor += 1
            return True
        if marker in self._seen:
            return True  # asked again in the same run: the same answer
        if self._actor.recorded_from(self._cursor) is not None:
            return False  # replaying a run that went past here under the old code
        seq, _ = self._reserve(marker, "patch")
        self._actor.record_patch(seq, marker)
        return True

    # -- recorded values ---------------------------------------------------------------------

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
