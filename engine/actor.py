"""RunActor: the one trio task that drives one active run.

An actor owns its run while it is active: it replays the workflow against the journal,
executes new steps, commits each result before the workflow moves on, and holds a
:class:`Mailbox` of wake-ups (its timer fired, a signal arrived). Cancellation comes
through its cancel scope.

When its run suspends (a sleep, a wait for an event) the actor stays *warm* for
``passivate_after`` seconds: a wake-up in that window continues the live coroutine at no
cost. After that it *passivates*: the coroutine is unwound (``finally`` blocks run), its
memory is freed, and only the journal remains. The next wake-up starts a new actor that
replays the journal to the same point. With ``passivate_after=0`` (the passive, inline
mode used when no supervisor runs) an actor passivates as soon as its run suspends.

Failure isolation: whatever the workflow raises ends that run (``failed``, with type,
message and traceback); an error of the store is logged and leaves the run for recovery.
Nothing an actor does can raise into the supervisor. A trio cancellation from outside
(the runtime shutting down) leaves the run as committed, to be recovered later.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import traceback
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import trio

from . import codec, logs
from .aio import AsyncioLoop, is_asyncio_step, needs_asyncio
from .context import RunContext
from .errors import (
    ChildFailed,
    DeadlineExceeded,
    NonDeterminismError,
    RunFinished,
    RunQuarantined,
    RunStateError,
    StepFailed,
    StoreError,
    WorkflowCodeError,
    WorkflowError,
)
from .journal import ACTIVE, EntryRow, RunRow, SignalRow, Write
from .lifecycle import CHILD_EVENT, child_outcome
from .logs import step_context
from .retry import Retry

if TYPE_CHECKING:
    from .context import StepCall
    from .store.base import Store
    from .tracing import Tracer
    from .workflow import Workflow

__all__ = ["ActorHost", "Mailbox", "RunActor", "RunMetrics"]

log = logging.getLogger("tarry.runs")

#: Mailbox message: the run's timer fired.
TIMER = "timer"
#: Mailbox message: a signal was committed for the run by one of this process's runs (a
#: child that ended); the actor re-reads its inbox from the store.
RELOAD = "reload"


class Passivate(BaseException):
    """Unwinds a workflow coroutine whose run is suspended and whose actor lets it go.

    A BaseException so that a workflow's ``except Exception`` cannot swallow it.
    """


class RunMetrics(Protocol):
    """What runs report to a runtime's :attr:`~tarry.Runtime.metrics` (``tarry worker
    --metrics`` gives it one: :class:`tarry.metrics.Metrics`). Called on the event loop."""

    def run_started(self, workflow_id: str) -> None: ...
    def run_ended(self, workflow_id: str, status: str) -> None: ...
    def step_attempted(self, workflow_id: str, step_id: str, seconds: float, failed: bool) -> None: ...
    def woke(self, late: float) -> None: ...


class ActorHost(Protocol):
    """What an actor needs from the runtime that hosts it."""

    store: Store
    passivate_after: float
    max_recoveries: int | None
    max_output_bytes: int | None
    asyncio_loop: AsyncioLoop
    tracer: Tracer | None
    metrics: RunMetrics | None

    def now(self) -> float: ...
    def to_trio(self, wall: float) -> float: ...
    def schedule_wake(self, run_id: str, wake_at: float) -> None: ...
    def cancel_wake(self, run_id: str) -> None: ...
    def actor_stopped(self, actor: RunActor) -> None: ...
    async def start_child(self, parent: RunActor, workflow: Any, payload: Any, run_id: str) -> RunRow: ...
    def child_ended(self, parent_run_id: str) -> None: ...
    def limiter(self, workflow: Workflow[Any]) -> trio.CapacityLimiter | None: ...
    async def cancel_child(self, run_id: str, reason: str) -> None: ...


class Mailbox:
    """The actor's queue of wake-ups: :data:`TIMER` or a :class:`SignalRow`."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: trio.Event | None = None

    def put(self, message: Any) -> None:
        self._items.append(message)
        if self._waiter is not None:
            self._waiter.set()

    def pop(self) -> Any:
        return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a message; whether one is there."""
        if not self._items:
            self._waiter = trio.Event()
            try:
                with trio.move_on_after(timeout):
                    await self._waiter.wait()
            finally:
                self._waiter = None
        return bool(self._items)


class RunActor:
    """Drives one run from its journal; see the module docstring."""

    def __init__(
        self,
        host: ActorHost,
        workflow: Workflow[Any],
        run: RunRow,
        journal: list[EntryRow],
        inbox: list[SignalRow],
        *,
        warm: bool,
        payload: Any = None,
    ) -> None:
        self.host = host
        self.workflow = workflow
        self.run = run
        self.run_id = run.run_id
        self.entries = {e.seq: e for e in journal}
        self.inbox = inbox
        self.warm = warm
        self.mailbox = Mailbox()
        #: Set when the run first suspends or the actor stops (what ``trigger`` waits for).
        self.first_stop = trio.Event()
        #: Set when the actor's task has ended.
        self.stopped = trio.Event()
        #: False once the actor is letting its run go: wake-ups must start a new actor.
        self.accepting = True
        #: True once the actor let go of its suspended run (a later wake-up must reload it).
        self.passivated = False
        self._fatal: WorkflowError | None = None
        #: The store refused one of this run's writes (a full disk...): the run stops where
        #: its journal is and is driven again later, never ended for it.
        self.store_fault: StoreError | None = None
        self._scope: trio.CancelScope | None = None
        self._cancel_reason: str | None = None
        #: The payload as validated by trigger (saves validating it twice on a first run).
        self._payload = payload if payload is not None else _UNSET
        #: When the workflow's deadline ends the run (wall clock), if it has one.
        self.deadline_at = run.created_at + workflow.deadline if workflow.deadline is not None else None
        self._reload = False  # a RELOAD came: re-read the inbox before the next wait
        #: The workflow's max_concurrent places (shared by its actors in this process).
        self._limiter = host.limiter(workflow)
        self._admitted = False
        #: Set by the runtime when recovery loaded this run (``running``, nobody driving it).
        self.recovering = False
        #: This activation's OpenTelemetry span (``None``: tracing is off).
        self.span: Any = None
        #: The ids of the steps whose functions run right now (several in a ``gather``).
        self.steps_in_flight: list[str] = []

    # -- what the context asks for ---------------------------------------------------------

    def now(self) -> float:
        return self.host.now()

    def check_open(self) -> None:
        if not self.accepting:
            raise Passivate

    def fatal(self, error: WorkflowError) -> WorkflowError:
        """Remember a rule the workflow broke: the run fails with it even if caught."""
        if self._fatal is None:
            self._fatal = error
        return error

    async def _commit(self, write: Write) -> bool:
        try:
            applied = await self.host.store.write(write)
        except StoreError as exc:
            # Kept even if the workflow's code catches it: the run must not end on it.
            self.store_fault = self.store_fault or exc
            raise
        if applied:
            self._mirror(write)
        return applied

    def _mirror(self, write: Write) -> None:
        """Keep this actor's copy of the run row as the store has it."""
        for column, value in write.run.items():
            setattr(self.run, column, value)
        if write.entries:
            self.run.last_step = write.entries[-1].step_id
        self.run.updated_at = write.updated_at

    def _put_entry(self, entry: EntryRow) -> None:
        self.entries[entry.seq] = entry

    def recorded(self, seq: int) -> EntryRow | None:
        """The journal's entry at ``seq`` (``None``: the call there is new)."""
        return self.entries.get(seq)

    def recorded_from(self, seq: int) -> EntryRow | None:
        """The first journal entry at ``seq`` or later (a ``gather`` whose step was
        cancelled leaves a position without one)."""
        later = [s for s in self.entries if s >= seq]
        return self.entries[min(later)] if later else None

    def _due(self, wake_at: float | None) -> float | None:
        """The time a suspended run must wake: its own wake time or its deadline."""
        if self.deadline_at is None:
            return wake_at
        return self.deadline_at if wake_at is None else min(wake_at, self.deadline_at)

    async def run_step(
        self, seq: int, call: StepCall[Any], policy: Retry, recorded: EntryRow | None, *, in_place: bool
    ) -> Any:
        """Run a step's attempts; ``recorded`` is its ``retrying`` entry when a replay
        continues a step between attempts. ``in_place``: wait out backoffs without
        suspending the run (the step is one of a ``gather``)."""
        step_id = call.step_id
        failures: list[dict[str, Any]] = []
        started = self.host.now()
        attempt = 0
        if recorded is not None:  # status "retrying": failed attempts are journaled
            detail = codec.loads(recorded.detail)
            failures = detail["failures"]
            attempt = recorded.attempts
            started = recorded.started_at
            await self._backoff(step_id, detail["next_at"], in_place)
        attempt_started = started if recorded is None else self.host.now()
        while True:
            attempt += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "step %r attempt %d started", step_id, attempt, extra=self._step_fields(step_id, "started", attempt)
                )
            try:
                if self.span is None:
                    result = await self._call(call, step_id)
                else:
                    result = await self._traced_call(call, step_id, attempt)
            except Exception as exc:
                error = _error_json(exc, step_id=step_id)
                finished = self.host.now()
                if self.host.metrics is not None:
                    self.host.metrics.step_attempted(self.workflow.id, step_id, finished - attempt_started, True)
                failures.append(
                    {
                        "attempt": attempt,
                        "started_at": attempt_started,
                        "finished_at": finished,
                        "type": error["type"],
                        "message": error["message"],
                    }
                )
                if policy.retries(exc, attempt):
                    next_at = finished + policy.delay(attempt)
                    await self._commit_retry(seq, step_id, started, attempt, error, failures, next_at, in_place)
                    if log.isEnabledFor(logging.INFO):
                        log.info(
                            "step %r attempt %d failed after %.1f ms: %s: %s; next attempt in %.3gs",
                            step_id, attempt, (finished - attempt_started) * 1000, error["type"], error["message"],
                            next_at - finished,
                            extra={
                                **self._step_fields(step_id, "retrying", attempt, finished - attempt_started, error),
                                "retry_in_s": round(next_at - finished, 3),
                            },
                        )  # fmt: skip
                    await self._backoff(step_id, next_at, in_place)
                    attempt_started = self.host.now()
                    continue
                detail = codec.dumps({"failures": failures}) if attempt > 1 else None
                entry = EntryRow(
                    self.run_id, seq, step_id, "step", "failed", started, finished, None, codec.dumps(error), detail,
                    attempt,
                )  # fmt: skip
                await self._commit(Write(self.run_id, finished, entries=[entry]))
                self._put_entry(entry)
                if log.isEnabledFor(logging.INFO):
                    log.info(
                        "step %r attempt %d failed after %.1f ms: %s: %s; no more attempts",
                        step_id, attempt, (finished - attempt_started) * 1000, error["type"], error["message"],
                        extra=self._step_fields(step_id, "failed", attempt, finished - attempt_started, error),
                    )  # fmt: skip
                raise StepFailed(
                    self.run_id, step_id, error["type"], error["message"], attempt, error["traceback"]
                ) from exc
            try:
                output = codec.dumps(
                    result, what="step output", run_id=self.run_id, step_id=step_id, limit=self.host.max_output_bytes
                )
            except WorkflowError as exc:
                raise self.fatal(exc) from None
            finished = self.host.now()
            if self.host.metrics is not None:
                self.host.metrics.step_attempted(self.workflow.id, step_id, finished - attempt_started, False)
            detail = codec.dumps({"failures": failures}) if failures else None
            entry = EntryRow(
                self.run_id, seq, step_id, "step", "completed", started, finished, output, None, detail, attempt
            )
            await self._commit(Write(self.run_id, finished, entries=[entry]))
            self._put_entry(entry)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "step %r completed in %.1f ms (attempt %d)", step_id, (finished - attempt_started) * 1000, attempt,
                    extra=self._step_fields(step_id, "completed", attempt, finished - attempt_started),
                )  # fmt: skip
            return codec.loads(output)

    def _step_fields(
        self,
        step_id: str,
        status: str,
        attempt: int,
        seconds: float | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The fields of a step's log line (``extra=``)."""
        fields: dict[str, Any] = {
            "run_id": self.run_id,
            "workflow_id": self.workflow.id,
            "step_id": step_id,
            "step_status": status,
            "attempt": attempt,
        }
        if seconds is not None:
            fields["duration_ms"] = round(seconds * 1000, 3)
        if error is not None:
            fields["error_type"], fields["error_message"] = error["type"], error["message"]
        return fields

    async def _commit_retry(
        self,
        seq: int,
        step_id: str,
        started: float,
        attempt: int,
        error: dict[str, Any],
        failures: list[dict[str, Any]],
        next_at: float,
        in_place: bool,
    ) -> None:
        """Journal a failed attempt and when the next one is due, before waiting for it; a
        step on its own also suspends its run until then (so the wait survives a restart
        and a passivation like a sleep)."""
        now = self.host.now()
        detail = codec.dumps({"failures": failures, "next_at": next_at})
        entry = EntryRow(
            self.run_id, seq, step_id, "step", "retrying", started, None, None, codec.dumps(error), detail, attempt
        )
        run: dict[str, Any] = {}
        if not in_place and next_at > now:
            pending = codec.dumps({"kind": "retry", "step": step_id, "wake_at": next_at, "attempt": attempt + 1})
            run = {"status": "suspended", "pending": pending, "wake_at": self._due(next_at), "wait_event": None}
        await self._commit(Write(self.run_id, now, run=run, entries=[entry]))
        self._put_entry(entry)

    async def _backoff(self, step_id: str, next_at: float, in_place: bool) -> None:
        if in_place:
            wait = next_at - self.host.now()
            if wait > 0:
                await trio.sleep(wait)
            return
        if self.host.now() >= next_at and self.run.status != "suspended":
            return
        while self.host.now() < next_at:
            self._drain_mailbox()
            due = self._due(next_at)
            assert due is not None
            self.host.schedule_wake(self.run_id, due)
            await self._next_message()
        self._drain_mailbox()
        if self.host.metrics is not None:
            self.host.metrics.woke(self.host.now() - next_at)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "run %s resumed: step %r backoff ended", self.run_id, step_id,
                extra={"run_id": self.run_id, "workflow_id": self.workflow.id, "status": "running", "step_id": step_id},
            )  # fmt: skip
        run = {"status": "running", "pending": None, "wake_at": None, "wait_event": None}
        # Not awaited, as a sleep's end: the attempt's own result commits after it.
        resumed = Write(self.run_id, self.host.now(), run=run, require=ACTIVE)
        self.host.store.write_behind(resumed)
        self._mirror(resumed)

    async def _traced_call(self, call: StepCall[Any], step_id: str, attempt: int) -> Any:
        assert self.host.tracer is not None
        with self.host.tracer.step(self.span, self.run_id, self.workflow.id, step_id, attempt):
            return await self._call(call, step_id)

    async def _call(self, call: StepCall[Any], step_id: str) -> Any:
        kind = _step_kind(call.fn)
        if kind is _ASYNC:  # the common case: the step's own coroutine, no wrapper around it
            running = call.fn(*call.args, **call.kwargs)
        elif kind is _ASYNCIO:
            where = f"{step_id!r} of run {self.run_id!r}"
            running = self.host.asyncio_loop.run(call.fn, call.args, call.kwargs, where)
        else:
            # A sync step's thread cannot be interrupted: when the step is cancelled (its
            # timeout, the deadline, a cancel of the run, the runtime shutting down) the
            # thread is abandoned. It finishes in the background; its result is dropped.
            running = _invoke(call.fn, call.args, call.kwargs, kind is _ASYNC)
        self.steps_in_flight.append(step_id)
        # What the step logs itself carries its ids (logs.step_context; copied into a thread),
        # once a worker has set up logging that shows them.
        token = step_context.set((self.run_id, self.workflow.id, step_id)) if logs.STEP_IDS else None
        try:
            if call.timeout is None:  # the common case pays for no cancel scope
                return await running
            with trio.move_on_after(call.timeout):
                return await running
        except (RuntimeError, TypeError) as exc:
            # asyncio code on trio: say which step and how to fix it, not "no running event loop"
            if kind is not _ASYNCIO and (needs := needs_asyncio(exc, self.run_id, step_id)) is not None:
                raise self.fatal(needs) from exc
            raise
        finally:
            if token is not None:
                step_context.reset(token)
            self.steps_in_flight.remove(step_id)
        raise TimeoutError(f"step {step_id!r} of run {self.run_id!r} took longer than {call.timeout}s")

    def record_patch(self, seq: int, marker: str) -> None:
        """Journal a ``ctx.patched`` marker. Not awaited: if it is lost in a crash, the replay
        reaches the same call with nothing recorded past it and records it again; it commits
        before (or with) the run's next awaited write."""
        now = self.host.now()
        entry = EntryRow(self.run_id, seq, marker, "patch", "completed", now, now, None, None, None, 1)
        write = Write(self.run_id, now, entries=[entry])
        self.host.store.write_behind(write)
        self._mirror(write)
        self._put_entry(entry)

    async def record_value(self, seq: int, step_id: str, kind: str, value: Any) -> Any:
        now = self.host.now()
        entry = EntryRow(self.run_id, seq, step_id, kind, "completed", now, now, codec.dumps(value), None, None, 1)
        await self._commit(Write(self.run_id, now, entries=[entry]))
        self._put_entry(entry)
        return value

    async def sleep(self, seq: int, step_id: str, recorded: EntryRow | None, wake_at: float | None) -> None:
        if recorded is not None:
            if recorded.status == "completed":
                return
            entry = recorded
            wake_at = codec.loads(recorded.detail)["wake_at"]
        else:
            assert wake_at is not None
            now = self.host.now()
            detail = codec.dumps({"wake_at": wake_at})
            if wake_at <= now:
                entry = EntryRow(self.run_id, seq, step_id, "sleep", "completed", now, now, None, None, detail)
                await self._commit(Write(self.run_id, now, entries=[entry]))
                self._put_entry(entry)
                return
            entry = EntryRow(self.run_id, seq, step_id, "sleep", "waiting", now, None, None, None, detail)
            pending = codec.dumps({"kind": "sleep", "step": step_id, "wake_at": wake_at})
            run = {"status": "suspended", "pending": pending, "wake_at": self._due(wake_at), "wait_event": None}
            await self._commit(Write(self.run_id, now, run=run, entries=[entry]))
            self._put_entry(entry)
            log.info("run %s suspended: sleep %r", self.run_id, step_id, extra={"workflow_id": self.workflow.id})
        assert wake_at is not None
        while self.host.now() < wake_at:
            self._drain_mailbox()
            self.host.schedule_wake(self.run_id, self._due(wake_at))  # type: ignore[arg-type]
            await self._next_message()
        self._drain_mailbox()  # the timer message that ended the sleep is spent
        now = self.host.now()
        if self.host.metrics is not None:
            self.host.metrics.woke(now - wake_at)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "run %s resumed: sleep %r ended", self.run_id, step_id,
                extra={"run_id": self.run_id, "workflow_id": self.workflow.id, "status": "running", "step_id": step_id},
            )  # fmt: skip
        done = EntryRow(
            self.run_id, seq, step_id, "sleep", "completed", entry.started_at, now, None, None, entry.detail
        )
        run = {"status": "running", "pending": None, "wake_at": None, "wait_event": None}
        # Not awaited: replay redoes this write from the committed wake time if it is lost,
        # and it commits before (or with) the next step's result, which is awaited.
        ended = Write(self.run_id, now, run=run, entries=[done], require=ACTIVE)
        self.host.store.write_behind(ended)
        self._mirror(ended)
        self._put_entry(done)

    async def wait_for_event(
        self, seq: int, step_id: str, recorded: EntryRow | None, events: tuple[str, ...], deadline: float | None
    ) -> tuple[str, Any, str | None] | None:
        """Wait for a signal named one of ``events``; its ``(event, payload, sent_by)``, or
        ``None`` when ``deadline`` passed first. The sender is journaled with the wait."""
        wait_event = "\x1f".join(events)
        suspended = recorded is not None  # (a resumption is logged only after a suspension)
        if recorded is not None:
            detail = codec.loads(recorded.detail)
            if recorded.status == "completed":
                if detail.get("timed_out"):
                    return None
                return detail.get("received", detail["event"]), codec.loads(recorded.output), detail.get("sent_by")
            entry = recorded
            deadline = detail.get("deadline")
        else:
            now = self.host.now()
            facts: dict[str, Any] = {"event": events[0], "deadline": deadline}
            if len(events) > 1:
                facts["events"] = list(events)
            entry = EntryRow(
                self.run_id, seq, step_id, "event", "waiting", now, None, None, None, codec.dumps(facts)
            )  # fmt: skip
            self._drain_mailbox()
            if not any(self._has_signal(e) for e in events) and (deadline is None or deadline > now):
                pending = codec.dumps(
                    {"kind": "event", "step": step_id, "event": events[0], "events": list(events), "deadline": deadline}
                    if len(events) > 1
                    else {"kind": "event", "step": step_id, "event": events[0], "deadline": deadline}
                )
                run = {
                    "status": "suspended",
                    "pending": pending,
                    "wake_at": self._due(deadline),
                    "wait_event": wait_event,
                }
                await self._commit(Write(self.run_id, now, run=run, entries=[entry]))
                self._put_entry(entry)
                suspended = True
                log.info(
                    "run %s suspended: waiting for event %r (%r)", self.run_id, wait_event, step_id,
                    extra={"workflow_id": self.workflow.id},
                )  # fmt: skip
        base = codec.loads(entry.detail)
        while True:
            self._drain_mailbox()
            if self._reload:
                await self._reload_inbox()
            signal = self._take_signal(events)
            now = self.host.now()
            if signal is not None:
                received = {"received": signal.event, "signal_id": signal.id, "sent_by": signal.sent_by}
                detail = codec.dumps({**base, **received, "sent_at": signal.sent_at})
                done = EntryRow(
                    self.run_id, seq, step_id, "event", "completed", entry.started_at, now, signal.payload, None, detail
                )
                run = {"status": "running", "pending": None, "wake_at": None, "wait_event": None}
                try:
                    await self._commit(Write(self.run_id, now, run=run, entries=[done], consume=[(signal.id, step_id)]))
                except RunStateError:
                    continue  # someone else took that signal first: wait for another
                self._put_entry(done)
                self.host.cancel_wake(self.run_id)
                if suspended and log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "run %s resumed: event %r received (%r)", self.run_id, signal.event, step_id,
                        extra={
                            "run_id": self.run_id, "workflow_id": self.workflow.id, "status": "running",
                            "step_id": step_id, "event": signal.event,
                        },
                    )  # fmt: skip
                return signal.event, codec.loads(signal.payload), signal.sent_by
            if deadline is not None and now >= deadline:
                detail = codec.dumps({**base, "timed_out": True})
                done = EntryRow(
                    self.run_id, seq, step_id, "event", "completed", entry.started_at, now, None, None, detail
                )
                run = {"status": "running", "pending": None, "wake_at": None, "wait_event": None}
                await self._commit(Write(self.run_id, now, run=run, entries=[done]))
                self._put_entry(done)
                return None
            due = self._due(deadline)
            if due is not None:
                self.host.schedule_wake(self.run_id, due)
            await self._next_message()

    async def child(
        self, seq: int, step_id: str, recorded: EntryRow | None, workflow: Any, payload: Any, *, wait: bool
    ) -> Any:
        """Start (once) the child run of ``step_id``; with ``wait``, suspend until it ends
        and return its output (raise :class:`ChildFailed` if it failed or was cancelled)."""
        if recorded is not None:
            detail = codec.loads(recorded.detail)
            child_id = detail["child_run_id"]
            if recorded.status != "waiting":
                return child_id if not detail.get("wait") else self._child_outcome(recorded, child_id)
            entry = recorded
        else:
            child_id = f"{self.run_id}:{step_id}"
            try:
                row = await self.host.start_child(self, workflow, payload, child_id)
            except WorkflowError as exc:
                raise self.fatal(exc) from None
            now = self.host.now()
            detail = codec.dumps({"child_run_id": child_id, "workflow_id": row.workflow_id, "wait": wait})
            if not wait:
                entry = EntryRow(
                    self.run_id, seq, step_id, "child", "completed", now, now, codec.dumps(child_id), None, detail
                )
                await self._commit(Write(self.run_id, now, entries=[entry]))
                self._put_entry(entry)
                return child_id
            entry = EntryRow(self.run_id, seq, step_id, "child", "waiting", now, None, None, None, detail)
            pending = codec.dumps({"kind": "child", "step": step_id, "child_run_id": child_id})
            run = {
                "status": "suspended",
                "pending": pending,
                "wake_at": self._due(None),
                "wait_event": CHILD_EVENT + child_id,
            }
            await self._commit(Write(self.run_id, now, run=run, entries=[entry]))
            self._put_entry(entry)
            log.info(
                "run %s suspended: waiting for child run %s (%r)", self.run_id, child_id, step_id,
                extra={"run_id": self.run_id, "workflow_id": self.workflow.id, "status": "suspended", "step_id": step_id},
            )  # fmt: skip
        self._reload = True  # the child may have ended before this run suspended
        event = (CHILD_EVENT + child_id,)
        while True:
            self._drain_mailbox()
            if self._reload:
                await self._reload_inbox()
            signal = self._take_signal(event)
            if signal is not None:
                outcome = codec.loads(signal.payload)
                now = self.host.now()
                failed = outcome["status"] != "completed"
                done = EntryRow(
                    self.run_id, seq, step_id, "child", "failed" if failed else "completed", entry.started_at, now,
                    None if failed else outcome["output"], codec.dumps(outcome["error"]) if failed else None,
                    codec.dumps({**codec.loads(entry.detail), "status": outcome["status"], "signal_id": signal.id}),
                )  # fmt: skip
                run = {"status": "running", "pending": None, "wake_at": None, "wait_event": None}
                try:
                    await self._commit(Write(self.run_id, now, run=run, entries=[done], consume=[(signal.id, step_id)]))
                except RunStateError:
                    continue
                self._put_entry(done)
                return self._child_outcome(done, child_id)
            due = self._due(None)
            if due is not None:
                self.host.schedule_wake(self.run_id, due)
            await self._next_message()

    def _child_outcome(self, entry: EntryRow, child_id: str) -> Any:
        if entry.status == "failed":
            error = codec.loads(entry.error) or {}
            raise ChildFailed(
                self.run_id, entry.step_id, child_id, error.get("type", "Error"), error.get("message", ""),
                error.get("traceback", ""),
            )  # fmt: skip
        return codec.loads(entry.output)

    async def _reload_inbox(self) -> None:
        """Re-read the run's unconsumed signals: one committed by another run's write (a
        child's outcome) reaches this actor only through the store."""
        self._reload = False
        loaded = await self.host.store.load(self.run_id)
        if loaded is None:
            return
        known = {s.id for s in self.inbox}
        self.inbox.extend(s for s in loaded[2] if s.id not in known and s.consumed_at is None)

    # -- the mailbox ------------------------------------------------------------------------

    def _drain_mailbox(self) -> None:
        """Move arrived signals to the inbox; stale timer messages are dropped (every wait
        re-checks the clock itself)."""
        while (message := self.mailbox.pop()) is not None:
            if isinstance(message, SignalRow):
                if all(s.id != message.id for s in self.inbox):
                    self.inbox.append(message)
            elif message == RELOAD:
                self._reload = True

    def _has_signal(self, event: str) -> bool:
        return any(s.event == event for s in self.inbox)

    def _take_signal(self, events: tuple[str, ...]) -> SignalRow | None:
        for i, signal in enumerate(self.inbox):
            if signal.event in events:
                del self.inbox[i]
                return signal
        return None

    async def _next_message(self) -> None:
        """Wait for the next wake-up while warm; passivate when none comes in time."""
        self.first_stop.set()
        self._release()  # a suspended run does not count against max_concurrent
        if not self.warm or not await self.mailbox.wait(self.host.passivate_after):
            # No await between the empty check and this flag: a wake-up from now on
            # starts a new actor instead of landing in this mailbox.
            self.accepting = False
            self.passivated = True
            raise Passivate
        if self._limiter is not None:
            await self._admit()

    # -- max_concurrent -----------------------------------------------------------------------

    async def _admit(self) -> None:
        """Take one of the workflow's ``max_concurrent`` places before running its code,
        waiting in line (first come, first served) when all are taken. A run that has to
        wait says so in its row (``pending: {"kind": "queued"}``); it stays ``running`` in
        the store, so a crash loses nothing and the next process queues it again."""
        limiter = self._limiter
        if limiter is None or self._admitted:
            return
        queued = False
        if limiter.available_tokens < 1:
            queued = True
            pending = codec.dumps({"kind": "queued", "max_concurrent": int(limiter.total_tokens)})
            await self._commit(Write(self.run_id, self.host.now(), run={"pending": pending}))
            self.first_stop.set()  # trigger() returns: the run is in line
            log.info("run %s queued: %s has %d running", self.run_id, self.workflow.id, limiter.total_tokens)
        await limiter.acquire_on_behalf_of(self)
        self._admitted = True
        if queued:
            admitted = Write(self.run_id, self.host.now(), run={"pending": None}, require=ACTIVE)
            self.host.store.write_behind(admitted)
            self._mirror(admitted)

    def _release(self) -> None:
        if self._admitted and self._limiter is not None:
            self._admitted = False
            self._limiter.release_on_behalf_of(self)

    # -- driving the run --------------------------------------------------------------------

    @property
    def cancel_requested(self) -> bool:
        """Whether this activation was asked to cancel its run."""
        return self._cancel_reason is not None

    def cancel(self, reason: str) -> None:
        """Cancel the run: the workflow is interrupted where it is and ends ``cancelled``."""
        self._cancel_reason = reason
        if self._scope is not None:
            self._scope.cancel()

    async def drive(self) -> None:
        """Run the workflow until it suspends and passivates, or ends. Never raises
        (except trio's cancellation when the runtime shuts down)."""
        tracer = self.host.tracer
        if tracer is not None:
            self.span = tracer.start_run(self.run_id, self.workflow.id, self.run.attempt, self.run.traceparent)
        try:
            await self._drive()
        except StoreError as exc:
            self.store_fault = self.store_fault or exc
        except Exception:
            log.exception("run %s: the engine failed while driving it; it is left for recovery", self.run_id)
        finally:
            if tracer is not None:
                failed = codec.loads(self.run.error) if self.run.error else None
                error = f"{failed.get('type')}: {failed.get('message')}" if isinstance(failed, dict) else None
                tracer.end_run(self.span, self.run.status, error)
            self._release()
            self.accepting = False
            self.first_stop.set()
            self.stopped.set()
            self.host.actor_stopped(self)

    async def _drive(self) -> None:
        if self.run.status not in ACTIVE:
            return
        # Asked while nobody was running it; or while its last activation was suspending it
        # (a cancel that met the run running, then the run suspended before it was acted on).
        if self.run.cancel_reason is not None and self.run.status in ACTIVE:
            self._cancel_reason = self.run.cancel_reason  # asked while nobody was running it
            await self._finish("cancelled")
            return
        if self.deadline_at is not None and self.host.now() >= self.deadline_at:
            await self._finish("failed", error=codec.dumps(_error_json(self._deadline_error(), with_traceback=False)))
            return
        if self.recovering and self.run.status == "running" and not await self._note_recovery():
            return
        error: dict[str, Any] | None = None
        output: str | None = None
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._cancel_reason is not None:
                scope.cancel()
            if self.deadline_at is not None:
                scope.deadline = self.host.to_trio(self.deadline_at)
            try:
                if self._limiter is not None:
                    await self._admit()
                payload = (
                    self._payload
                    if self._payload is not _UNSET
                    else self.workflow.validate(codec.loads(self.run.payload))
                )
                ctx: RunContext[Any] = RunContext(
                    self,
                    payload,
                    run_id=self.run_id,
                    workflow_id=self.workflow.id,
                    attempt=self.run.attempt,
                    parent_run_id=self.run.parent_run_id,
                )
                result = await self.workflow.run(ctx)
            except Passivate:
                return
            except ChildFailed as exc:
                error = self._fatal_json() or _error_json(exc, with_traceback=False)
            except StepFailed as exc:
                error = self._fatal_json() or _step_error_json(exc)
            except Exception as exc:
                error = self._fatal_json() or _error_json(exc)
            else:
                error = self._fatal_json()
                if error is None and (unawaited := ctx.unawaited()) is not None:
                    error = _error_json(unawaited, with_traceback=False)
                if error is None and (left := ctx.unreplayed()) is not None:
                    unreplayed = NonDeterminismError(
                        self.run_id, left.seq, f"{left.kind} {left.step_id!r}", None, step_id=left.step_id
                    )
                    error = _error_json(unreplayed)
                if error is None:
                    try:
                        output = codec.dumps(
                            result, what="workflow output", run_id=self.run_id, limit=self.host.max_output_bytes
                        )
                    except WorkflowError as exc:
                        error = _error_json(exc)
        if self.store_fault is not None:
            return  # what failed was the store, not the run: it goes on from its journal later
        if scope.cancelled_caught and self._cancel_reason is None and self.deadline_at is not None:
            await self._finish("failed", error=codec.dumps(_error_json(self._deadline_error(), with_traceback=False)))
        elif scope.cancelled_caught or (self._cancel_reason is not None and error is None and output is None):
            await self._finish("cancelled")
        elif error is not None:
            await self._finish("failed", error=codec.dumps(error))
        else:
            await self._finish("completed", output=output)

    async def _note_recovery(self) -> bool:
        """Count this pick-up of a run that a dead process left ``running``, committed
        before the replay: a run whose step kills every process that drives it must not
        take each new worker down with it. Progress (a new entry or step attempt) resets
        the count; past ``max_recoveries`` pick-ups at one mark the run fails with
        :class:`RunQuarantined`. False: the run is not to be driven (quarantined, or no
        longer ``running``)."""
        mark = len(self.entries) + sum(e.attempts for e in self.entries.values())
        count = self.run.recoveries + 1 if self.run.recovery_mark == mark else 1
        limit = self.host.max_recoveries
        if limit is not None and count > limit:
            error = RunQuarantined(self.run_id, count, self.run.last_step, mark)
            log.error("%s", error, extra={"run_id": self.run_id, "step_id": self.run.last_step})
            await self._finish("failed", error=codec.dumps(_error_json(error, with_traceback=False)))
            return False
        write = Write(
            self.run_id,
            self.host.now(),
            run={"recoveries": count, "recovery_mark": mark},
            require=frozenset({"running"}),
        )
        return await self._commit(write)

    def _deadline_error(self) -> DeadlineExceeded:
        assert self.deadline_at is not None
        assert self.workflow.deadline is not None
        return DeadlineExceeded(self.run_id, self.deadline_at, self.workflow.deadline)

    def _fatal_json(self) -> dict[str, Any] | None:
        return None if self._fatal is None else _error_json(self._fatal, with_traceback=False)

    async def _finish(self, status: str, *, output: str | None = None, error: str | None = None) -> None:
        run: dict[str, Any] = {
            "status": status,
            "output": output,
            "error": error,
            "pending": None,
            "wake_at": None,
            "wait_event": None,
        }
        if status == "cancelled":
            run["cancel_reason"] = self._cancel_reason
            await self._cancel_children()
        self.host.cancel_wake(self.run_id)
        write = Write(self.run_id, self.host.now(), run=run, require=ACTIVE)
        parent = self.run.parent_run_id
        if parent is not None:
            # The outcome reaches the parent as a signal committed with this run's end: a
            # crash cannot leave a parent waiting for a child that has ended.
            if status == "cancelled":
                err: Any = {"type": "RunCancelled", "message": self._cancel_reason or "cancelled"}
            else:
                err = codec.loads(error) if error is not None else None
            write.signals.append(child_outcome(self.run, status, output=output, error=err))
        # Not shielded: once queued, the write commits even if this task is cancelled while
        # it waits, and a run whose outcome did not commit is recovered and replayed.
        applied = await self._commit(write)
        if applied:
            self._log_end(status, error)
            if self.host.metrics is not None:
                self.host.metrics.run_ended(self.workflow.id, status)
            if parent is not None:
                self.host.child_ended(parent)

    def _log_end(self, status: str, error: str | None) -> None:
        """``run X completed`` (``cancelled``; ``failed``, a warning, with the step, the
        error's type and message), with the run's workflow and how long it took."""
        level = logging.WARNING if status == "failed" else logging.INFO
        if not log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "run_id": self.run_id,
            "workflow_id": self.workflow.id,
            "status": status,
            "duration_ms": round((self.host.now() - self.run.created_at) * 1000, 3),
        }
        if status == "cancelled":
            fields["reason"] = self._cancel_reason
        if error is None:
            log.log(level, "run %s %s", self.run_id, status, extra=fields)
            return
        failure = codec.loads(error)
        step_id = failure.get("step_id")
        fields.update(error_type=failure.get("type"), error_message=failure.get("message"))
        if step_id is not None:
            fields["step_id"] = step_id
            entry = next((e for e in self.entries.values() if e.step_id == step_id), None)
            if entry is not None and entry.kind == "step":
                fields["attempt"] = entry.attempts
        where = f" at step {step_id!r}" if step_id is not None else ""
        log.log(
            level, "run %s %s%s: %s: %s", self.run_id, status, where, failure.get("type"), failure.get("message"),
            extra=fields,
        )  # fmt: skip

    async def _cancel_children(self) -> None:
        """A cancelled run cancels the child runs it started that are still active (each
        request is committed before the parent's end, so none is missed after a crash)."""
        for entry in sorted(self.entries.values(), key=lambda e: e.seq):
            if entry.kind != "child":
                continue
            child_id = codec.loads(entry.detail)["child_run_id"]
            if entry.status == "failed" or (entry.status == "completed" and codec.loads(entry.detail).get("wait")):
                continue  # it has ended
            with contextlib.suppress(RunFinished):
                await self.host.cancel_child(child_id, f"its parent run {self.run_id!r} was cancelled")


_UNSET: Any = object()
_SYNC, _ASYNC, _ASYNCIO = "sync", "async", "asyncio"
_step_kinds: dict[Any, str] = {}


def _step_kind(fn: Callable[..., Any]) -> str:
    """How a step function runs: on trio (``async def``), in a thread (sync), or on an
    asyncio loop (marked by ``asyncio_step``). Cached: it is asked for every step."""
    try:
        return _step_kinds[fn]
    except (KeyError, TypeError):  # TypeError: an unhashable callable
        kind = _ASYNCIO if is_asyncio_step(fn) else _ASYNC if inspect.iscoroutinefunction(fn) else _SYNC
        if len(_step_kinds) < 4096:
            with contextlib.suppress(TypeError):
                _step_kinds[fn] = kind
        return kind


async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], is_async: bool) -> Any:
    """Await an async step function; run a sync one in a worker thread (so it cannot block
    other runs) and await what it returns if that is awaitable. Cancelling this returns at
    once: a sync function's thread is abandoned (a daemon thread: it cannot keep the process
    alive) and whatever it returns later is dropped."""
    if is_async:
        return await fn(*args, **kwargs)
    result = await trio.to_thread.run_sync(partial(fn, *args, **kwargs), abandon_on_cancel=True)
    if inspect.isawaitable(result):
        result = await result
    return result


def _error_json(exc: BaseException, *, step_id: str | None = None, with_traceback: bool = True) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(exc)) if with_traceback else ""
    data: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc), "traceback": tb}
    if isinstance(exc, WorkflowError):
        data["code"] = exc.code
        if isinstance(exc, WorkflowCodeError | StepFailed) or getattr(exc, "step_id", None):
            data["step_id"] = getattr(exc, "step_id", None)
    if step_id is not None:
        data["step_id"] = step_id
    return _storable(data)


def _step_error_json(exc: StepFailed) -> dict[str, Any]:
    """An uncaught StepFailed ends the run with the step's own error, not the wrapper."""
    return _storable(
        {
            "type": exc.error_type,
            "message": exc.error_message,
            "traceback": exc.traceback,
            "code": exc.code,
            "step_id": exc.step_id,
        }
    )


def _storable(error: dict[str, Any]) -> dict[str, Any]:
    """``error`` with every text encodable as UTF-8: a message may quote a lone surrogate
    (from user code, or the bad name it refuses), and an error that cannot be stored would
    leave the run stuck in ``running`` instead of failed."""
    return {
        key: value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value
        for key, value in error.items()
    }
