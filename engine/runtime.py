"""Runtime: the workflow registry, the verbs, and the supervisor that owns every actor.

Two ways to drive runs:

1. **Passive** (no supervisor, like @visulima/workflow): ``trigger``, ``sweep`` and
   ``signal`` drive a run inline, in the caller's task, until it suspends or ends. Nothing
   happens between calls; a cron job calling ``sweep()`` resumes what is due.
2. **Actor-style** (``async with runtime:`` or ``await runtime.serve()``): a trio nursery
   supervises one task per active run, and a :class:`TimerWheel` wakes sleeping runs and
   times out waits by itself. ``trigger`` still returns when the run first suspends or
   ends; the run then goes on in the background.

Leaving ``async with runtime:`` cancels every actor where it stands: nothing committed is
lost, and a later runtime on the same store recovers the runs (a step that was executing
runs again: steps are at-least-once). ``await runtime.drain(grace)`` before leaving stops
taking new work and lets the steps in progress finish first (what ``tarry worker`` does on
SIGTERM).

Changes that other processes commit to the store (a ``tarry.Client`` triggering,
signalling, cancelling or retrying runs) reach a serving runtime through
:meth:`Runtime.run_changed` and :meth:`Runtime.deliver_signal`, which ``tarry.Worker``
calls as it notices them; without a worker they are seen by the next recovery or ``sweep()``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from types import TracebackType
from typing import Any, NoReturn

import trio

from . import codec, lifecycle
from .actor import RELOAD, TIMER, RunActor, RunMetrics
from .aio import AsyncioLoop
from .errors import (
    InvalidArgument,
    LeaseLost,
    NeedsTrio,
    RunNotFound,
    StoreError,
    WaitTimeout,
    WorkflowError,
    WorkflowNotFound,
)
from .identity import default_identity, resolve_identity
from .journal import (
    ACTIVE,
    PRUNE_BATCH,
    TERMINAL,
    RunRow,
    SignalRow,
    encode_tags,
    new_run_id,
    prune_filter,
    run_filter,
    same_trigger,
    trigger_audit,
)
from .limits import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_PAYLOAD_BYTES, check_limit, check_name
from .results import RunInfo, RunResult, outcome
from .schedules import run_schedule
from .seat import Seat
from .store import MemoryStore
from .store.base import SharedStore, Store
from .timers import TimerWheel
from .tracing import Tracer, current_traceparent
from .workflow import Workflow

__all__ = ["Runtime", "create_runtime"]

log = logging.getLogger("tarry.runtime")

#: result(): seconds between re-reads of a run (for an end committed by another process
#: that told this one nothing), doubling up to the max while nothing happens.
_RESULT_REREAD = 1.0
_RESULT_REREAD_MAX = 30.0


class Clock:
    """Wall-clock time (UNIX seconds) that advances with trio's clock.

    Anchored to ``time.time()`` the first time it is read in a trio run, then moved by
    trio's monotonic clock: under trio's ``MockClock`` an hour-long sleep passes in no
    real time, and in production wall-clock jumps do not disturb running timers.
    """

    __slots__ = ("_clock", "_t0", "_wall0")

    def __init__(self) -> None:
        self._clock: object | None = None
        self._t0 = 0.0
        self._wall0 = 0.0

    def _anchor(self) -> trio.abc.Clock:
        clock = trio.lowlevel.current_clock()
        if clock is not self._clock:
            self._clock = clock
            self._t0 = clock.current_time()
            self._wall0 = time.time()
        return clock

    def now(self) -> float:
        try:
            clock = self._anchor()
        except RuntimeError:  # outside trio
            return time.time()
        return self._wall0 + (clock.current_time() - self._t0)

    def to_trio(self, wall: float) -> float:
        """The trio-clock deadline of a wall-clock time."""
        self._anchor()
        return self._t0 + (wall - self._wall0)


class Runtime:
    """Runs workflows durably on a store. Build it with :func:`create_runtime`.

    Args:
        workflows: the workflows it can run (more with :meth:`register`).
        store: where runs live; defaults to a :class:`MemoryStore` (not durable).
        passivate_after: seconds a suspended run's actor stays warm (its coroutine alive)
            before it is unwound and only its journal is kept. Larger: fewer replays;
            smaller: less memory per waiting run.
        timer_resolution: the timer wheel's tick, seconds.
        load_window: the wheel holds wake-ups due within this many seconds; later ones
            stay in the store and are loaded as the window moves on.
        max_recoveries: how many times recovery may pick up a run that a dead process
            left ``running`` at one point of its journal; the next time it fails with
            :class:`RunQuarantined` (a poison run: its step kills every process that runs
            it). Progress resets the count, so restarts alone never quarantine a healthy
            run. ``None``: never quarantine.
        max_payload_bytes: the largest payload (of a run, a child run or a signal) as
            JSON, in bytes; a larger one raises :class:`PayloadTooLarge` and nothing is
            written. Default 2 MiB; ``None``: no limit.
        max_output_bytes: the largest step or workflow output as JSON; a step whose
            result is larger fails its run with :class:`PayloadTooLarge` (not retried:
            the same code gives the same size). Default 2 MiB; ``None``: no limit.
        identity: who this runtime's verbs (``trigger``, ``signal``, ``cancel``, ``retry``)
            are recorded as in the audit trail, unless a call says ``by=``; default
            ``user@host`` of this process. A trigger gets an audit row only when it says
            ``by=`` or ``identity`` was given: the runs an application starts itself are the
            hot path (an audit row each cost W1 conc 12 %), its operators' verbs are not.
        tracing: ``True``: OpenTelemetry spans of every run activation and step attempt,
            through the global tracer provider; or a ``TracerProvider`` to use. Needs
            ``pip install 'tarry[otel]'`` (see :mod:`tarry.tracing`). Default off.

    Raises:
        InvalidArgument: a bad limit or identity; ``tracing`` without OpenTelemetry installed.
    """

    def __init__(
        self,
        workflows: Iterable[Workflow[Any]] = (),
        store: Store | None = None,
        *,
        passivate_after: float = 5.0,
        timer_resolution: float = 0.001,
        load_window: float = 60.0,
        max_recoveries: int | None = 5,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
        max_output_bytes: int | None = DEFAULT_MAX_OUTPUT_BYTES,
        identity: str | None = None,
        tracing: Any = False,
    ) -> None:
        self.identity = resolve_identity(identity, default_identity())
        self._audit_triggers = identity is not None
        #: Makes the spans of runs and steps; ``None`` when tracing is off (the hot path's one check).
        self.tracer: Tracer | None = None
        if tracing is not False and tracing is not None:
            self.tracer = Tracer(None if tracing is True else tracing)
        self.max_recoveries = check_limit("max_recoveries", max_recoveries, unit="pick-ups")
        self.max_payload_bytes = check_limit("max_payload_bytes", max_payload_bytes)
        self.max_output_bytes = check_limit("max_output_bytes", max_output_bytes)
        self.store: Store = store if store is not None else MemoryStore()
        self.passivate_after = _seconds("passivate_after", passivate_after, zero=True)
        self.load_window = _seconds("load_window", load_window)
        timer_resolution = _seconds("timer_resolution", timer_resolution)
        self._workflows: dict[str, Workflow[Any]] = {}
        self._actors: dict[str, RunActor] = {}
        self._loading: set[str] = set()
        self._store_faults: dict[str, int] = {}  # run id -> store failures in a row
        self._clock = Clock()
        self._wheel = TimerWheel(resolution=timer_resolution)
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None
        self._opened = False
        self._next_far: float | None = None  # earliest wake-up beyond the wheel's window
        self._loader_scope: trio.CancelScope | None = None
        self._draining = False  # drain(): nothing new starts, actors stop at their next durable call
        # What arrived for a run while its actor was being loaded (handed over once it is).
        self._cancels: dict[str, str] = {}
        self._early_signals: dict[str, list[SignalRow]] = {}
        self._limiters: dict[str, trio.CapacityLimiter] = {}
        self._seat = Seat(self.store)
        #: Where its ``asyncio_step`` steps run (a loop of its own is started on first use).
        self.asyncio_loop = AsyncioLoop()
        self._result_waiters: dict[str, list[trio.Event]] = {}  # result(): woken when a run may have ended
        #: Where runs report what they do (``None``: nowhere, at no cost); ``tarry worker
        #: --metrics`` sets a :class:`tarry.metrics.Metrics`.
        self.metrics: RunMetrics | None = None
        self.register(*workflows)

    # -- registry -------------------------------------------------------------------------

    def register(self, *workflows: Workflow[Any]) -> None:
        """Add workflows. Registering the same object twice is harmless.

        Raises:
            InvalidArgument: not a Workflow, or its id is taken by another workflow.
        """
        for wf in workflows:
            if not isinstance(wf, Workflow):
                raise InvalidArgument(f"register() takes workflows made by @workflow, not {wf!r}")
            existing = self._workflows.get(wf.id)
            if existing is not None and existing is not wf:
                raise InvalidArgument(f"another workflow is already registered with id {wf.id!r}", workflow_id=wf.id)
            self._workflows[wf.id] = wf

    @property
    def workflows(self) -> dict[str, Workflow[Any]]:
        """The registered workflows by id (a copy)."""
        return dict(self._workflows)

    def _resolve(self, workflow: Workflow[Any] | str) -> Workflow[Any]:
        if isinstance(workflow, Workflow):
            if self._workflows.get(workflow.id) is not workflow:
                self.register(workflow)
            return workflow
        if not isinstance(workflow, str):
            raise InvalidArgument(f"expected a Workflow or a workflow id, not {workflow!r}")
        try:
            return self._workflows[workflow]
        except KeyError:
            raise WorkflowNotFound(workflow, list(self._workflows)) from None

    # -- ActorHost ------------------------------------------------------------------------

    def now(self) -> float:
        """Wall-clock seconds, moved by trio's clock (see :class:`Clock`)."""
        return self._clock.now()

    def to_trio(self, wall: float) -> float:
        """The trio-clock time of a wall-clock time (a run's deadline)."""
        return self._clock.to_trio(wall)

    async def start_child(self, parent: RunActor, workflow: Workflow[Any] | str, payload: Any, run_id: str) -> RunRow:
        """Create (once: ``run_id`` is derived from the parent's step) and start a child
        run; a child that exists already is returned as it is."""
        wf = self._resolve(workflow)
        validated = wf.validate(payload)
        payload_json = codec.dumps(validated, what="payload", run_id=run_id, limit=self.max_payload_bytes)
        now = self.now()
        new = RunRow(
            run_id, wf.id, "running", payload_json, now, now, parent_run_id=parent.run_id, tags=encode_tags(wf.tags)
        )
        # The child joins the trace of its parent's activation (or of its parent's trigger).
        tracer = self.tracer
        traced = tracer is not None and parent.span is not None
        new.traceparent = tracer.traceparent(parent.span) if tracer and traced else parent.run.traceparent
        row, created = await self.store.create_run(new)
        if created:
            log.info(
                "run %s started (%s), child of %s",
                run_id,
                wf.id,
                parent.run_id,
                extra={"run_id": run_id, "workflow_id": wf.id, "status": "running", "parent_run_id": parent.run_id},
            )
            if self.metrics is not None:
                self.metrics.run_started(wf.id)
            actor = self._new_actor(wf, row, [], [], validated)
            if self._nursery is not None:
                self._nursery.start_soon(actor.drive)
            else:
                await actor.drive()  # passive: inline, until it first suspends or ends
        return row

    def limiter(self, workflow: Workflow[Any]) -> trio.CapacityLimiter | None:
        """The places of a workflow with ``max_concurrent`` (one limiter per runtime)."""
        if workflow.max_concurrent is None:
            return None
        limiter = self._limiters.get(workflow.id)
        if limiter is None:
            limiter = self._limiters[workflow.id] = trio.CapacityLimiter(workflow.max_concurrent)
        return limiter

    def queued(self) -> dict[str, int]:
        """Runs in line for a place, by workflow (those with ``max_concurrent``)."""
        return {wf_id: limiter.statistics().tasks_waiting for wf_id, limiter in list(self._limiters.items())}

    def child_ended(self, parent_run_id: str) -> None:
        """A child's outcome was committed to its parent's inbox: wake the parent."""
        actor = self._actors.get(parent_run_id)
        if actor is not None and actor.accepting:
            actor.mailbox.put(RELOAD)
        elif self._nursery is not None and not self._draining:
            self._activate(parent_run_id)
        # Passive: the next sweep() finds the parent (its signal is in its inbox).

    async def cancel_child(self, run_id: str, reason: str) -> None:
        await self._cancel(run_id, reason, None)  # the engine's own doing: no audit row

    def schedule_wake(self, run_id: str, wake_at: float) -> None:
        if self._nursery is None or self._draining:
            return  # passive mode: sweep() finds it; draining: the next runtime loads it
        if wake_at - self.now() > self.load_window:
            self._note_far_wake(wake_at)  # stays in the store until the window reaches it
            return
        self._wheel.schedule(run_id, self._clock.to_trio(wake_at), self._on_wake)

    def _note_far_wake(self, wake_at: float) -> None:
        if self._next_far is None or wake_at < self._next_far:
            self._next_far = wake_at
            if self._loader_scope is not None:
                self._loader_scope.deadline = self._loader_deadline()

    def _loader_deadline(self) -> float:
        if self._next_far is None:
            return math.inf
        return self._clock.to_trio(self._next_far - self.load_window / 2)

    def cancel_wake(self, run_id: str) -> None:
        self._wheel.cancel(run_id)

    def actor_stopped(self, actor: RunActor) -> None:
        self._wake_result_waiters(actor.run_id)
        if self._actors.get(actor.run_id) is actor:
            del self._actors[actor.run_id]
        if actor.store_fault is not None:
            self._retry_after_fault(actor.run_id, actor.store_fault)
        elif self._store_faults:
            self._store_faults.pop(actor.run_id, None)
        if actor.passivated and len(actor.mailbox) and self._nursery is not None:
            self._activate(actor.run_id)  # a wake-up raced with passivation
        elif actor.cancel_requested and actor.store_fault is None and actor.run.status in ACTIVE and self._nursery:
            # A cancel reached the actor as it let its run go: the next one ends the run.
            self._activate(actor.run_id)

    def _retry_after_fault(self, run_id: str, fault: StoreError) -> None:
        """A write of the run failed in the store (a full disk, a damaged page...): nothing
        past its last commit is kept, and it is driven again, from its journal, after 0.5 s,
        then twice as long each time it fails again, up to 30 s. The count of recoveries
        (quarantine) is not touched: the run did nothing wrong."""
        failures = self._store_faults.get(run_id, 0) + 1
        self._store_faults[run_id] = failures
        if self._nursery is None:
            return  # passive: the error is raised to the caller
        if isinstance(fault, LeaseLost) or self._draining:
            log.error("run %s stopped: %s", run_id, fault, extra={"run_id": run_id})
            return  # the next worker (or this one's next start) takes it from its journal
        delay = min(0.5 * 2 ** (failures - 1), 30.0)
        log.error(
            "run %s stopped at its last commit: %s; trying again in %.1fs (failure %d)",
            run_id, fault, delay, failures, extra={"run_id": run_id},
        )  # fmt: skip
        self._wheel.schedule(run_id, self._clock.to_trio(self.now() + delay), self._on_wake)

    def _on_wake(self, run_id: Any) -> None:
        if self._draining:
            return  # the wake time stays in the store for the next runtime
        actor = self._actors.get(run_id)
        if actor is not None and actor.accepting:
            actor.mailbox.put(TIMER)
        else:
            self._activate(run_id)

    # -- actors ---------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        """True inside ``async with runtime:`` / ``serve()``."""
        return self._nursery is not None

    async def _open(self) -> None:
        if not trio.lowlevel.in_trio_task():  # asyncio code calling a verb: say what to do instead
            raise NeedsTrio
        if not self._opened:
            await self.store.open()
            self._opened = True

    def _activate(self, run_id: str, *, recovering: bool = False) -> None:
        """Make sure a live actor drives ``run_id`` (serving mode; fire and forget).
        ``recovering``: no live process drives it (see ``RunActor._note_recovery``)."""
        actor = self._actors.get(run_id)
        if (actor is not None and actor.accepting) or run_id in self._loading or self._nursery is None:
            return
        if self._draining:
            return
        self._loading.add(run_id)
        self._nursery.start_soon(self._load_and_drive, run_id, recovering)

    async def _load_and_drive(self, run_id: str, recovering: bool = False) -> None:
        try:
            actor = await self._load_actor(run_id, recovering)
        except WorkflowError:
            log.exception("run %s could not be loaded; it stays as stored", run_id)
            return
        finally:
            self._loading.discard(run_id)
        if actor is None:
            self._cancels.pop(run_id, None)
            self._early_signals.pop(run_id, None)
            return
        self._hand_over(actor)
        await actor.drive()

    async def _load_actor(self, run_id: str, recovering: bool = False) -> RunActor | None:
        loaded = await self.store.load(run_id)
        if loaded is None:
            return None
        row, journal, inbox = loaded
        if row.status not in ACTIVE:
            return None
        wf = self._workflows.get(row.workflow_id)
        if wf is None:
            log.warning(
                "run %s belongs to workflow %r, which is not registered here; it waits for a runtime that has it",
                run_id,
                row.workflow_id,
            )
            return None
        actor = self._new_actor(wf, row, journal, inbox)
        actor.recovering = recovering
        return actor

    def _new_actor(
        self, wf: Workflow[Any], row: RunRow, journal: list[Any], inbox: list[SignalRow], payload: Any = None
    ) -> RunActor:
        actor = RunActor(self, wf, row, journal, inbox, warm=self.serving, payload=payload)
        if self._draining:  # it stops at its first durable call; the run stays for the next runtime
            actor.accepting = actor.warm = False
        self._actors[row.run_id] = actor
        return actor

    async def _run_until_stop(self, actor: RunActor) -> RunResult:
        """Drive ``actor`` until its run first suspends or ends: inline when passive, as a
        supervised task when serving."""
        if self._nursery is not None:
            self._nursery.start_soon(actor.drive)
            await actor.first_stop.wait()
        else:
            await actor.drive()
            if actor.store_fault is not None:  # passive: nobody drives it again, so say so
                raise actor.store_fault
        return RunResult.from_row(actor.run)

    def _announcing(self) -> SharedStore | None:
        """The shared store a passive runtime writes through, announcing each change as a
        client does, so that a process serving the database hears of it (``None``: serving,
        or no other process can open the store)."""
        return self._seat.shared if self._nursery is None else None

    @asynccontextmanager
    async def _driving(self) -> AsyncIterator[bool]:
        """Whether this call may drive runs: always when serving (this process serves the
        database); when passive, while it holds the seat (engine/seat.py). Taken only once
        there is something to drive, so a refused call writes nothing at all."""
        if self._nursery is not None:
            yield True
            return
        async with self._seat.hold() as seated:
            yield seated

    async def _resume(self, run_id: str, recovering: bool = False) -> RunResult | None:
        """Drive ``run_id`` until it suspends or ends, unless an activation of it is live or
        loading in this process (``None``: that one drives it; what this call brought,
        a signal say, is in the store and reaches it)."""
        while (current := self._actors.get(run_id)) is not None:
            if current.accepting:
                return None
            await current.stopped.wait()  # letting its run go: what it missed is in the store
        if run_id in self._loading:
            return None
        # Claimed before the first await: two overlapping calls never both load it.
        self._loading.add(run_id)
        try:
            actor = await self._load_actor(run_id, recovering)
        finally:
            self._loading.discard(run_id)
        if actor is None:
            return None
        self._hand_over(actor)
        return await self._run_until_stop(actor)

    def _hand_over(self, actor: RunActor) -> None:
        """Give a freshly loaded actor what arrived while it was loading: a cancel, and
        signals its load may have read too early to see."""
        reason = self._cancels.pop(actor.run_id, None)
        if reason is not None:
            actor.cancel(reason)
        for signal in self._early_signals.pop(actor.run_id, ()):  # a duplicate is dropped when consumed
            actor.mailbox.put(signal)

    # -- the verbs ------------------------------------------------------------------------

    async def trigger(
        self, workflow: Workflow[Any] | str, payload: Any = None, *, run_id: str | None = None, by: str | None = None
    ) -> RunResult:
        """Start a run of ``workflow`` (a Workflow or its id) with ``payload``.

        Returns when the run first suspends or ends, with its status, output or pending
        wait. With a ``run_id`` that already exists for this workflow, nothing new starts:
        the existing run's state is returned (an idempotent trigger). Without one, the
        run gets a new UUIDv7 (ids sort by creation time). ``by``: who asks, for the audit
        trail (default: the runtime's ``identity``). The W3C ``traceparent`` of the span
        current here, if any (OpenTelemetry), is stored with the run: its spans join it.

        Raises:
            WorkflowNotFound: an unknown workflow id.
            PayloadValidationError: the payload fails the workflow's schema (nothing written).
            NotSerializable: the payload has no JSON form, or holds a NaN or infinity
                (nothing written).
            PayloadTooLarge: the payload is over ``max_payload_bytes`` (nothing written).
            InvalidArgument: a ``run_id`` that is not a name (empty, over 1000 bytes, or
                with a control character).
            RunAlreadyExists: ``run_id`` belongs to a run of another workflow.
            IdempotencyConflict: ``run_id`` exists with another payload (nothing written).

        Guarantees:
            The run is committed before its first step starts; from then on it survives a
            crash of this process and is recovered by the next runtime on the same store.
        """
        wf = self._resolve(workflow)
        check_name("run_id", run_id, optional=True, workflow_id=wf.id)
        who = resolve_identity(by, self.identity)
        validated = wf.validate(payload)
        payload_json = codec.dumps(validated, what="payload", run_id=run_id, limit=self.max_payload_bytes)
        if run_id is None:
            run_id = new_run_id()
        await self._open()
        now = self.now()
        new = RunRow(
            run_id,
            wf.id,
            "running",
            payload_json,
            now,
            now,
            traceparent=current_traceparent(),
            tags=encode_tags(wf.tags),
        )
        audit = trigger_audit(new, who) if by is not None or self._audit_triggers else None
        if (shared := self._announcing()) is not None:
            row, created = await trio.to_thread.run_sync(shared.client_trigger, new, None, audit)
        else:
            row, created = await self.store.create_run(new, audit=audit)
        if not created:
            same_trigger(row, payload_json)
            return RunResult.from_row(row)
        log.info(
            "run %s started (%s)", run_id, wf.id, extra={"run_id": run_id, "workflow_id": wf.id, "status": "running"}
        )
        if self.metrics is not None:
            self.metrics.run_started(wf.id)
        if shared is None:  # the hot path: serving, or nobody else can open the store
            return await self._run_until_stop(self._new_actor(wf, row, [], [], validated))
        async with self._driving() as seated:
            if not seated:  # another process holds the database: it drives the run
                return RunResult.from_row(row)
            return await self._run_until_stop(self._new_actor(wf, row, [], [], validated))

    async def signal(
        self, run_id: str, event: str, payload: Any = None, *, dedup_key: str | None = None, by: str | None = None
    ) -> bool:
        """Send the signal ``event`` with ``payload`` to a run; whether it was new.

        With a ``dedup_key`` the run already received a signal under (consumed or not,
        from this process or another), nothing is sent and this returns ``False``: a
        sender that retries after a timeout delivers once.

        The signal is committed to the run's inbox before this returns. A run waiting for
        ``event`` takes it and goes on (inline when passive); otherwise it stays in the
        inbox for the run's next ``wait_for_event(..., event)``. ``by``: who sends it, stored
        with the signal (default: the runtime's ``identity``); the workflow reads it as
        ``ctx.last_signal_sender``.

        Raises:
            RunNotFound: no such run.
            RunFinished: the run has ended (nothing is stored).
            InvalidArgument: a run id, event name or dedup key that is not a name (empty,
                over 1000 bytes, or with a control character).
            PayloadTooLarge: the payload is over ``max_payload_bytes`` (nothing stored).
            NotSerializable: a payload with no JSON form.
            IdempotencyConflict: ``dedup_key`` was used with another event or payload.
        """
        check_name("run_id", run_id)
        check_name("event name", event, run_id=run_id)
        check_name("dedup_key", dedup_key, optional=True, run_id=run_id)
        who = resolve_identity(by, self.identity)
        payload_json = codec.dumps(payload, what="signal payload", run_id=run_id, limit=self.max_payload_bytes)
        await self._open()
        if (shared := self._announcing()) is not None:
            sent = partial(shared.client_signal, run_id, event, payload_json, self.now(), dedup_key, who)
            signal = await trio.to_thread.run_sync(sent)
        else:
            signal = await self.store.add_signal(run_id, event, payload_json, self.now(), dedup_key, who)
        if signal.duplicate:
            return False
        if shared is None:
            await self.deliver_signal(signal)
            return True
        async with self._driving() as seated:
            if seated:  # else the process that holds the run takes it
                await self.deliver_signal(signal)
        return True

    async def deliver_signal(self, signal: SignalRow, row: RunRow | None = None) -> None:
        """Hand a committed signal to its run.

        The run's live actor gets it in its mailbox; a run suspended waiting for that event
        is resumed (inline when passive, by a new actor when serving); otherwise the signal
        waits in the inbox for the run's next ``wait_for_event``. :meth:`signal` ends with
        this; ``tarry.Worker`` calls it for signals another process committed.

        Args:
            signal: the signal as stored (its ``id`` is what a wait consumes).
            row: the run's current row, if the caller has just read it (saves a read).
        """
        actor = self._actors.get(signal.run_id)
        if actor is not None and actor.accepting:
            actor.mailbox.put(signal)
            return
        if signal.run_id in self._loading:  # its actor may have read the inbox before this signal
            self._early_signals.setdefault(signal.run_id, []).append(signal)
            return
        if row is None:
            row = await self.store.get_run(signal.run_id)
        if row is not None and row.status == "suspended" and _waits_for(row, signal.event):
            if self._nursery is not None:
                self._activate(signal.run_id)
            else:
                await self._resume(signal.run_id)

    def run_changed(self, row: RunRow) -> None:
        """Act on a run that another process changed in the store (serving mode).

        ``row`` is the run as just read from the store. A ``running`` run (triggered or
        retried elsewhere) gets an actor if it has none; a cancel request reaches the
        run's live actor (or the actor being loaded); a run cancelled while suspended loses
        its timer and its warm actor. A no-op when not serving or draining. Signals go
        through :meth:`deliver_signal` instead.
        """
        if row.status in TERMINAL:
            self._wake_result_waiters(row.run_id)
        if self._nursery is None or self._draining:
            return
        run_id = row.run_id
        actor = self._actors.get(run_id)
        if row.cancel_reason is not None and row.status in ("running", "suspended", "cancelled"):
            self._wheel.cancel(run_id)
            if actor is not None:
                actor.cancel(row.cancel_reason)
            elif run_id in self._loading:
                self._cancels[run_id] = row.cancel_reason
            elif row.status in ACTIVE:
                self._activate(run_id)  # the new actor sees cancel_reason and ends the run cancelled
        elif row.status == "running":
            self._activate(run_id)
        elif row.status in TERMINAL:
            self._wheel.cancel(run_id)

    async def adopt(self, rows: list[RunRow]) -> None:
        """Take over runs this runtime did not drive until now (serving mode): runs a
        shared store just gave this worker (a dead worker's, or triggered by a client).

        Each is picked up as recovery would: a ``running`` run is re-driven from its
        journal, a sleeping one goes on the wheel, a wait whose signal already arrived
        resumes. A no-op when not serving or draining.
        """
        if self._nursery is None or self._draining or not rows:
            return
        horizon = self.now() + self.load_window
        waiting = set()
        for row in rows:
            if row.status == "running":
                self._activate(row.run_id, recovering=True)
            elif row.status == "suspended":
                if row.wake_at is not None and row.run_id not in self._actors:
                    if row.wake_at <= horizon:
                        self._wheel.schedule(row.run_id, self._clock.to_trio(row.wake_at), self._on_wake)
                    else:
                        self._note_far_wake(row.wake_at)
                if row.wait_event is not None:
                    waiting.add(row.run_id)
        if waiting:
            for run_id in await self.store.runs_with_signals():
                if run_id in waiting:
                    self._activate(run_id)

    async def resume(self, run_id: str) -> RunResult:
        """Drive one run now if it can move: a sleep or timeout that is due, a wait whose
        signal is in its inbox, or a run left ``running`` by a process that stopped. Returns
        its state as it first suspends again or ends; a run with nothing to do (or that
        another activation drives) is returned as it stands.

        Raises:
            RunNotFound: no such run.
            InvalidArgument: a run id that is not a name.

        Guarantees:
            As :meth:`sweep`, for one run: never a second activation of it, in this process
            or another.
        """
        check_name("run_id", run_id)
        await self._open()
        loaded = await self.store.load(run_id)
        if loaded is None:
            raise RunNotFound(run_id)
        row, _, inbox = loaded
        due = row.wake_at is not None and row.wake_at <= self.now()
        signalled = any(_waits_for(row, s.event) for s in inbox)
        movable = row.status == "running" or (row.status == "suspended" and (due or signalled))
        result = None
        async with self._driving() as seated:
            if seated and movable:
                result = await self._resume(run_id, recovering=row.status == "running" and run_id not in self._actors)
            if result is None:
                now = await self.store.get_run(run_id)
                result = RunResult.from_row(now or row)
            return result

    async def sweep(self, *, limit: int = 10_000) -> list[RunResult]:
        """Resume every run that can move: sleeps and timeouts that are due, waits whose
        signal is already in the inbox (sent by another process, say), and runs left
        ``running`` by a process that stopped (they replay and re-run their interrupted
        step). Returns the resumed runs' states, as each first suspends again or ends.

        Args:
            limit: resume at most this many runs (a cron job that must end in time); the
                rest wait for the next sweep.

        Raises:
            InvalidArgument: ``limit`` is not a whole number >= 1.

        Guarantees:
            A run is driven by one activation at a time: a run that another call of this
            runtime drives is skipped, and on a SQLite file that another process serves (a
            worker, or an overlapping sweep from another cron job) nothing is driven and
            ``[]`` is returned: that process drives the runs.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgument(f"sweep(limit=...) takes a whole number >= 1, not {limit!r}", field="limit")
        await self._open()
        async with self._driving() as seated:
            if not seated:
                log.info("sweep skipped: another process serves %s and drives its runs", self.store.name)
                return []
            # The change rows that this runtime's own calls announced (and clients') are for
            # a process that serves the database; none does while this one holds it, and
            # what they announce is what this sweep looks for: they go once it has looked.
            shared = self._announcing()
            seen = None if shared is None else await trio.to_thread.run_sync(shared.last_change)
            due = [run_id for run_id, _ in await self.store.due_runs(self.now(), limit)]
            candidates = [*await self.store.running_runs(), *due, *await self.store.runs_with_signals()]
            results = []
            for run_id in dict.fromkeys(candidates):
                result = await self._resume(run_id, recovering=True)
                if result is not None:
                    results.append(result)
                    if len(results) >= limit:
                        break
            if shared is not None and seen and len(results) < limit:
                await trio.to_thread.run_sync(shared.forget_changes, seen)
            return results

    async def result(self, run_id: str, *, timeout: float | None = None) -> Any:
        """Wait until the run has ended (``completed``, ``failed`` or ``cancelled``; a
        suspension is not an end) and return its output.

        Woken by the run's actor in this runtime when it stops, or by a Client's change
        this worker takes in, with no polling. A run that only another process drives
        (another PostgreSQL worker's, or any run while this runtime does not serve and a
        worker elsewhere does) is read again after 1 s, then at doubling intervals up to
        30 s: from another process, use :meth:`Client.result`, which watches the database.
        Passive, nothing moves a suspended run but ``sweep()`` or ``signal()`` from another
        task: wait with a ``timeout`` then.

        Args:
            timeout: seconds (trio's clock); ``None`` waits for ever.

        Raises:
            RunFailed: the run ended ``failed``; ``.error`` is its :class:`RunError`.
            RunCancelled: the run was cancelled; ``.reason`` says why.
            WaitTimeout: it had not ended within ``timeout`` (a ``TimeoutError`` too); the
                run goes on.
            RunNotFound: no such run.
            InvalidArgument: a run id that is not a name, or a negative or NaN timeout.
        """
        check_name("run_id", run_id)
        if timeout is not None and not timeout >= 0:
            raise InvalidArgument(f"timeout must be a number of seconds >= 0, not {timeout!r}", field="timeout")
        await self._open()
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        reread = _RESULT_REREAD
        while True:
            ended = trio.Event()  # registered before the read: an end after it wakes us
            waiters = self._result_waiters.setdefault(run_id, [])
            waiters.append(ended)
            try:
                row = await self.store.get_run(run_id)
                if row is None:
                    raise RunNotFound(run_id)
                if row.status in TERMINAL:
                    return outcome(row)
                if trio.current_time() >= deadline:
                    assert timeout is not None
                    raise WaitTimeout(run_id, timeout, row.status, until="end")
                with trio.move_on_at(min(deadline, trio.current_time() + reread)):
                    await ended.wait()
                reread = _RESULT_REREAD if ended.is_set() else min(reread * 2, _RESULT_REREAD_MAX)
            finally:
                if ended in waiters:
                    waiters.remove(ended)
                if not waiters and self._result_waiters.get(run_id) is waiters:
                    del self._result_waiters[run_id]

    def _wake_result_waiters(self, run_id: str) -> None:
        for ended in self._result_waiters.pop(run_id, ()):
            ended.set()

    async def get_run(self, run_id: str) -> RunInfo:
        """Everything about a run: status, payload, output or error, pending wait, the
        journal and the signals. Raises :class:`RunNotFound`."""
        await self._open()
        found = await self.store.run_info(run_id)
        if found is None:
            raise RunNotFound(run_id)
        return RunInfo.from_rows(*found)

    async def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[RunResult]:
        """Runs, newest first, filtered by status (one or several), workflow id and a tag
        their workflow carried when they were created.

        Raises:
            InvalidArgument: an unknown status, a negative limit/offset, or a tag that is
                not a name.
        """
        statuses = run_filter(status, limit=limit, offset=offset)
        check_name("tag", tag, optional=True)
        await self._open()
        rows = await self.store.list_runs(
            status=statuses, workflow_id=workflow_id, limit=limit, offset=offset, tag=tag or None
        )
        return [RunResult.from_row(r) for r in rows]

    async def prune(self, *, older_than: Any, status: str | Iterable[str] | None = None) -> int:
        """Delete ended runs (``completed``, ``failed``, ``cancelled``; or those of
        ``status``) that finished more than ``older_than`` (a ``timedelta`` or seconds) ago,
        with their journals and signals. Returns how many. Active runs are never touched.

        Deleted in batches of 500 runs, one transaction each.

        Raises:
            InvalidArgument: a bad age, or a status that is not an ended one.
        """
        seconds, statuses = prune_filter(older_than, status)
        await self._open()
        before = self.now() - seconds
        total = 0
        while (n := await self.store.prune(before, statuses, PRUNE_BATCH)) > 0:
            total += n
            if n < PRUNE_BATCH:
                break
        if total:
            log.info("pruned %d run(s) that ended before %s", total, before, extra={"pruned": total})
        return total

    async def delete(self, run_id: str, *, by: str | None = None) -> None:
        """Delete an ended run with its journal and signals (a prune of one run). The runs
        it started are not touched. Its audit trail stays, with who deleted it (``by``,
        default the runtime's ``identity``): ``Client.audit_trail(run_id)``.

        Raises:
            RunNotFound: no such run.
            RunStillActive: the run has not ended (nothing is deleted): cancel it first.
            InvalidArgument: a run id that is not a name.
        """
        check_name("run_id", run_id)
        await self._open()
        who = resolve_identity(by, self.identity)
        await self.store.transition(run_id, lifecycle.delete(self.now(), who))
        log.info("run %s deleted by %s", run_id, who, extra={"run_id": run_id, "by": who})

    async def cancel(self, run_id: str, *, reason: str | None = None, by: str | None = None) -> RunResult:
        """Cancel a run and every active run it started: a step in progress is
        interrupted, a sleep or wait ends, and the run ends ``cancelled``. A child run's
        parent gets the outcome (its ``ctx.child`` raises ``ChildFailed``). ``by``: who
        asks, for the audit trail (default: the runtime's ``identity``).

        Raises:
            RunNotFound, RunFinished: nothing to cancel.
            InvalidArgument: a run id or ``by`` that is not a name.

        Guarantees:
            One transaction ends every suspended run of the tree (warm, passivated, or held
            by a process that died) and asks every running one to stop
            (:func:`tarry.lifecycle.cancel`). A run that another process is executing (or
            that a crashed process left ``running``) ends ``cancelled`` as soon as its
            owner, or the next recovery, sees the request.
        """
        check_name("run_id", run_id)
        return await self._cancel(run_id, reason or "cancelled by request", resolve_identity(by, self.identity))

    async def _cancel(self, run_id: str, reason: str, by: str | None) -> RunResult:
        await self._open()
        plan = lifecycle.cancel(reason, self.now(), by)
        if (shared := self._announcing()) is not None:  # a process that holds the runs stops them
            cancel = partial(shared.client_transition, run_id, plan, announce="cancel", descendants=True)
            rows = await trio.to_thread.run_sync(cancel)
        else:
            rows = await self.store.transition(run_id, plan, descendants=True)
        for row in rows:
            self._wake_result_waiters(row.run_id)
        async with self._driving() as seated:
            if not seated:
                return RunResult.from_row(rows[0])
            await self._after_transition(rows)
            actor = self._actors.get(run_id)
            if actor is not None:
                await actor.stopped.wait()
            row = await self.store.get_run(run_id) or rows[0]
        log.info("run %s cancel requested: %s", run_id, reason, extra={"run_id": run_id, "reason": reason})
        return RunResult.from_row(row)

    async def _after_transition(self, rows: list[RunRow]) -> None:
        """Bring this process in line with runs a transition changed in the store: a
        cancelled run loses its timer and its live actor; a parent that was sent a
        child's outcome is woken (driven inline when passive)."""
        written = {row.run_id for row in rows}
        parents = []
        for row in rows:
            if row.cancel_reason is not None and row.status in ("running", "cancelled"):
                self._wheel.cancel(row.run_id)
                actor = self._actors.get(row.run_id)
                if actor is not None:
                    actor.cancel(row.cancel_reason)
                elif row.run_id in self._loading:
                    self._cancels[row.run_id] = row.cancel_reason
                if actor is None and row.status == "cancelled" and self.metrics is not None:
                    self.metrics.run_ended(row.workflow_id, "cancelled")  # the transition ended it, not an actor
            if row.status in TERMINAL and row.parent_run_id is not None and row.parent_run_id not in written:
                parents.append(row.parent_run_id)
        for parent in parents:
            if self._nursery is not None:
                self.child_ended(parent)
            else:
                await self._resume(parent)

    async def retry(self, run_id: str, *, from_step: str | None = None, by: str | None = None) -> RunResult:
        """Re-drive a failed run from its journal, e.g. after fixing the code.

        Completed steps are not run again; the step whose failure ended the run (and any
        failed steps right before it) run again. Returns when the run suspends or ends.

        With ``from_step``: fork a NEW run (new id, ``forked_from`` naming this one) of the
        same workflow and payload whose journal is a copy of this run's up to that step, so
        that step and everything after it run again; this run is left as it is. Any ended
        run (completed, failed, cancelled) can be forked. The copy and the new run commit
        in one transaction. ``by``: who asks, for the audit trail (default: the runtime's
        ``identity``).

        Raises:
            RunNotFound: no run has this id.
            RunNotRetryable: the run has not failed (with ``from_step``, has not ended).
            WorkflowNotFound: its workflow is not registered here.
            InvalidArgument: ``from_step`` is not in the journal (the message lists its steps).
        """
        check_name("run_id", run_id)
        who = resolve_identity(by, self.identity)
        await self._open()
        shared = self._announcing()
        if from_step is not None:
            loaded = await self.store.load(run_id)
            if loaded is None:
                raise RunNotFound(run_id)
            row, journal, _ = loaded
            wf = self._resolve(row.workflow_id)
            new, copied = lifecycle.fork(row, journal, from_step, new_run_id(), self.now())
            new.traceparent = current_traceparent()
            audit = trigger_audit(new, who, from_step)
            if shared is not None:
                created, _ = await trio.to_thread.run_sync(shared.client_trigger, new, copied, audit)
            else:
                created, _ = await self.store.create_run(new, copied, audit)
            log.info(
                "run %s forked from %s at step %r",
                new.run_id,
                run_id,
                from_step,
                extra={"run_id": new.run_id, "workflow_id": wf.id, "status": "running", "forked_from": run_id},
            )
            if self.metrics is not None:
                self.metrics.run_started(wf.id)
            async with self._driving() as seated:
                if not seated:  # the process that holds the database drives the copy
                    return RunResult.from_row(created)
                return await self._run_until_stop(self._new_actor(wf, created, copied, []))
        found = await self.store.get_run(run_id)
        if found is None:
            raise RunNotFound(run_id)
        self._resolve(found.workflow_id)  # before anything is written: it must be runnable here
        plan = lifecycle.retry(self.now(), who)
        if shared is not None:
            retry = partial(shared.client_transition, run_id, plan, announce="retry", journal=True)
            (row,) = await trio.to_thread.run_sync(retry)
        else:
            (row,) = await self.store.transition(run_id, plan, journal=True)
        log.info(
            "run %s retried (attempt %d)",
            run_id,
            row.attempt,
            extra={"run_id": run_id, "workflow_id": row.workflow_id, "status": "running", "attempt": row.attempt},
        )
        async with self._driving() as seated:
            result = await self._resume(run_id) if seated else None
        if result is None:  # already live (another task resumed it first), or another process drives it
            now = await self.store.get_run(run_id)
            assert now is not None
            result = RunResult.from_row(now)
        return result

    # -- the supervisor -------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        if self._nursery is not None:
            raise InvalidArgument("this runtime is already serving; enter it once")
        await self._open()
        self._draining = False
        self._cancels.clear()
        self._early_signals.clear()
        manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        self._nursery_manager, self._nursery = manager, nursery
        try:
            await nursery.start(self._wheel.run)
            await nursery.start(self._supervise)
        except BaseException as exc:
            await self._stop(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return await self._stop(exc_type, exc, tb)

    async def _stop(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        nursery, manager = self._nursery, self._nursery_manager
        if nursery is None:
            return False
        nursery.cancel_scope.cancel()
        try:
            return bool(await manager.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:  # trio's strict groups: one error leaves as itself
            if len(group.exceptions) != 1:
                raise
            reraise(group.exceptions[0])
        finally:
            self._nursery = self._nursery_manager = None
            for run_id in list(self._actors):
                self._wheel.cancel(run_id)
            self._actors.clear()
            self._loading.clear()
            await self.asyncio_loop.aclose()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise runs until cancelled: ``async with runtime: await trio.sleep_forever()``."""
        async with self:
            task_status.started()
            await trio.sleep_forever()

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` was called, until the runtime is entered again."""
        return self._draining

    async def drain(self, grace: float = 10.0) -> bool:
        """Stop taking new work and give the steps in progress up to ``grace`` seconds.

        From this call on nothing new starts: timers that fire, signals, runs triggered or
        retried (here or by another process) stay in the store for the next runtime. Each
        active run stops at its next durable call: a run whose step finishes commits that
        step and stops before the next one (it stays ``running`` and is replayed from its
        journal later); a suspended run lets its actor go at once. Returns ``True`` when
        every actor stopped within ``grace``, ``False`` when some were still busy; leaving
        ``async with runtime:`` then interrupts those where they stand (a sync step's thread
        is abandoned, its result dropped): they stay ``running`` in the store, and their
        steps run again on recovery (at-least-once). Nothing committed is lost either way.
        When it ends (or is cancelled) it logs what became of each active run.

        Serving mode only (a no-op otherwise); not reversible: leave and enter again.

        Raises:
            InvalidArgument: a negative or NaN ``grace``.
        """
        if not grace >= 0:
            raise InvalidArgument(f"grace must be a number of seconds >= 0, not {grace!r}")
        if self._nursery is None:
            return True
        self._draining = True
        self._cancels.clear()
        busy = list(self._actors.values())
        log.info("draining: %d active run(s), grace %.1fs", len(busy), grace, extra={"active": len(busy)})
        for actor in busy:
            actor.accepting = actor.warm = False
            actor.mailbox.put(TIMER)  # wakes a warm suspended actor, which now lets its run go
        started = trio.current_time()
        try:
            with trio.move_on_after(grace):
                for actor in busy:
                    await actor.stopped.wait()
        finally:  # cut short (a second signal) too
            took = trio.current_time() - started
            done = all(actor.stopped.is_set() for actor in busy)
            _log_drained(busy, took, "drained" if done else "grace period over" if took >= grace else "drain cut short")
        return done

    async def _supervise(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recover, then move the wheel's window along: sleep until the earliest wake-up
        beyond the window comes within half a window, load what is due, repeat. No polling:
        an earlier far wake-up moves the deadline (see ``_note_far_wake``)."""
        await self._recover()
        for wf in self._workflows.values():
            if wf.schedule is not None and self._nursery is not None:
                self._nursery.start_soon(run_schedule, self, wf, wf.schedule)
        task_status.started()
        while True:
            with trio.CancelScope(deadline=self._loader_deadline()) as scope:
                self._loader_scope = scope
                await trio.sleep_forever()
            self._loader_scope = None
            try:
                await self._load_window()
            except WorkflowError:
                log.exception("loading due wake-ups failed; trying again in %.0fs", self.load_window / 2)
                await trio.sleep(self.load_window / 2)

    async def _recover(self) -> None:
        """Re-drive runs left mid-flight, schedule due wake-ups, and resume waits whose
        signal already arrived."""
        for run_id in await self.store.running_runs():
            self._activate(run_id, recovering=True)
        await self._load_window()
        for run_id in await self.store.runs_with_signals():
            self._activate(run_id)

    async def _load_window(self) -> None:
        horizon = self.now() + self.load_window
        due = await self.store.due_runs(horizon, limit=1_000_000)
        for run_id, wake_at in due:
            if run_id not in self._actors:
                self._wheel.schedule(run_id, self._clock.to_trio(wake_at), self._on_wake)
        self._next_far = await self.store.next_wake_after(horizon)

    async def aclose(self) -> None:
        """Close the store and stop the runtime's own asyncio loop, if it started one (the
        runtime must not be serving)."""
        await self.asyncio_loop.aclose()
        if self._opened:
            await self.store.close()
            self._opened = False


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc``, taken out of the exception group trio wrapped it in, as itself (so
    ``except RunNotFound:`` around ``async with runtime:`` catches it) with the traceback,
    ``__cause__`` and ``__context__`` it had where it was raised, not the group as context."""
    context, suppress = exc.__context__, exc.__suppress_context__
    try:
        raise exc
    finally:
        exc.__context__, exc.__suppress_context__ = context, suppress
        del exc


def _log_drained(actors: list[RunActor], took: float, outcome: str) -> None:
    """Say what became of each run that was active when the drain began: it ended, it was
    let go suspended, it stopped between two steps (``running``, replayed later), or it is
    left mid-step, to be interrupted when the runtime is left and resumed by the next one."""
    counts: dict[str, int] = {}
    left: list[str] = []
    for actor in actors:
        if not actor.stopped.is_set():
            where = ", ".join(repr(s) for s in actor.steps_in_flight) or "its workflow code"
            left.append(f"{actor.run_id} in {where}")
            continue
        status = "stopped between steps" if actor.run.status == "running" else actor.run.status
        counts[status] = counts.get(status, 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    if left:
        shown = "; ".join(left[:10]) + ("; ..." if len(left) > 10 else "")
        parts.append(f"{len(left)} left mid-step ({shown}) for the next worker to resume from its journal")
    what = ", ".join(parts) or "no active runs"
    if left:
        log.warning("%s after %.1fs: %s", outcome, took, what, extra={"active": len(left)})
    else:
        log.info("%s in %.1fs: %s", outcome, took, what, extra={"active": 0})


def _waits_for(row: RunRow, event: str) -> bool:
    """Whether a suspended run waits for signals named ``event`` (a multi-event wait
    stores its names joined by ``\x1f``)."""
    return row.wait_event is not None and event in row.wait_event.split("\x1f")


def create_runtime(workflows: Iterable[Workflow[Any]] = (), store: Store | None = None, **options: Any) -> Runtime:
    """``createRuntime({workflows, store})``: a :class:`Runtime` (see it for ``options``)."""
    return Runtime(workflows, store, **options)


def _seconds(name: str, value: Any, *, zero: bool = False) -> float:
    """``value`` as a finite number of seconds (> 0, or >= 0 with ``zero``)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise InvalidArgument(f"{name} must be a finite number of seconds {bound}, not {value!r}", field=name)
    return seconds
