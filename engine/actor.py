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

from . import codec
from .context import RunContext
from .errors import (
    NonDeterministicReplay,
    RunStateError,
    StepFailed,
    WorkflowCodeError,
    WorkflowError,
)
from .journal import ACTIVE, EntryRow, RunRow, SignalRow, Write
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .store.base import Store
    from .workflow import Workflow

__all__ = ["ActorHost", "Mailbox", "RunActor"]

log = logging.getLogger("tarry.runs")

#: Mailbox message: the run's timer fired.
TIMER = "timer"


class Passivate(BaseException):
    """Unwinds a workflow coroutine whose run is suspended and whose actor lets it go.

    A BaseException so that a workflow's ``except Exception`` cannot swallow it.
    """


class ActorHost(Protocol):
    """What an actor needs from the runtime that hosts it."""

    store: Store
    passivate_after: float

    def now(self) -> float: ...
    def schedule_wake(self, run_id: str, wake_at: float) -> None: ...
    def cancel_wake(self, run_id: str) -> None: ...
    def actor_stopped(self, actor: RunActor) -> None: ...


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
        self.journal = journal
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
        self._scope: trio.CancelScope | None = None
        self._cancel_reason: str | None = None
        #: The payload as validated by trigger (saves validating it twice on a first run).
        self._payload = payload if payload is not None else _UNSET

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
        applied = await self.host.store.write(write)
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
        if entry.seq < len(self.journal):
            self.journal[entry.seq] = entry
        else:
            self.journal.append(entry)

    async def run_step(
        self,
        seq: int,
        step_id: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: RetryPolicy,
        timeout: float | None,
    ) -> Any:
        started = self.host.now()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self._call(fn, args, kwargs, timeout, step_id)
            except Exception as exc:
                if policy.retries(exc, attempt):
                    await trio.sleep(policy.delay(attempt))
                    continue
                error = _error_json(exc, step_id=step_id)
                finished = self.host.now()
                entry = EntryRow(
                    self.run_id,
                    seq,
                    step_id,
                    "step",
                    "failed",
                    started,
                    finished,
                    None,
                    codec.dumps(error),
                    None,
                    attempt,
                )
                await self._commit(Write(self.run_id, finished, entries=[entry]))
                self._put_entry(entry)
                raise StepFailed(
                    self.run_id, step_id, error["type"], error["message"], attempt, error["traceback"]
                ) from exc
            try:
                output = codec.dumps(result, what="step output", run_id=self.run_id, step_id=step_id)
            except WorkflowError as exc:
                raise self.fatal(exc) from None
            finished = self.host.now()
            entry = EntryRow(
                self.run_id, seq, step_id, "step", "completed", started, finished, output, None, None, attempt
            )
            await self._commit(Write(self.run_id, finished, entries=[entry]))
            self._put_entry(entry)
            return codec.loads(output)

    async def _call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None, step_id: str
    ) -> Any:
        if timeout is None:  # the common case pays for no cancel scope
            return await _invoke(fn, args, kwargs)
        with trio.move_on_after(timeout):
            return await _invoke(fn, args, kwargs)
        raise TimeoutError(f"step {step_id!r} of run {self.run_id!r} took longer than {timeout}s")

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
            run = {"status": "suspended", "pending": pending, "wake_at": wake_at, "wait_event": None}
            await self._commit(Write(self.run_id, now, run=run, entries=[entry]))
            self._put_entry(entry)
            log.info("run %s suspended: sleep %r", self.run_id, step_id)
        assert wake_at is not None
        while self.host.now() < wake_at:
            self._drain_mailbox()
            self.host.schedule_wake(self.run_id, wake_at)
            await self._next_message()
        self._drain_mailbox()  # the timer message that ended the sleep is spent
        now = self.host.now()
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
        self, seq: int, step_id: str, recorded: EntryRow | None, event: str, deadline: float | None
    ) -> Any:
        if recorded is not None:
            if recorded.status == "completed":
                return codec.loads(recorded.output)
            entry = recorded
            deadline = codec.loads(recorded.detail).get("deadline")
        else:
            now = self.host.now()
            entry = EntryRow(
                self.run_id, seq, step_id, "event", "waiting", now, None, None, None,
                codec.dumps({"event": event, "deadline": deadline}),
            )  # fmt: skip
            self._drain_mailbox()
            if not self._has_signal(event) and (deadline is None or deadline > now):
                pending = codec.dumps({"kind": "event", "step": step_id, "event": event, "deadline": deadline})
                run = {"status": "suspended", "pending": pending, "wake_at": deadline, "wait_event": event}
                await self._commit(Write(self.run_id, now, run=run, entries=[entry]))
                self._put_entry(entry)
                log.info("run %s suspended: waiting for event %r (%r)", self.run_id, event, step_id)
        while True:
            self._drain_mailbox()
            signal = self._take_signal(event)
            now = self.host.now()
            if signal is not None:
                detail = codec.dumps({"event": event, "deadline": deadline, "signal_id": signal.id})
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
                return codec.loads(signal.payload)
            if deadline is not None and now >= deadline:
                detail = codec.dumps({"event": event, "deadline": deadline, "timed_out": True})
                done = EntryRow(
                    self.run_id, seq, step_id, "event", "completed", entry.started_at, now, None, None, detail
                )
                run = {"status": "running", "pending": None, "wake_at": None, "wait_event": None}
                await self._commit(Write(self.run_id, now, run=run, entries=[done]))
                self._put_entry(done)
                return None
            if deadline is not None:
                self.host.schedule_wake(self.run_id, deadline)
            await self._next_message()

    # -- the mailbox ------------------------------------------------------------------------

    def _drain_mailbox(self) -> None:
        """Move arrived signals to the inbox; stale timer messages are dropped (every wait
        re-checks the clock itself)."""
        while (message := self.mailbox.pop()) is not None:
            if isinstance(message, SignalRow):
                self.inbox.append(message)

    def _has_signal(self, event: str) -> bool:
        return any(s.event == event for s in self.inbox)

    def _take_signal(self, event: str) -> SignalRow | None:
        for i, signal in enumerate(self.inbox):
            if signal.event == event:
                del self.inbox[i]
                return signal
        return None

    async def _next_message(self) -> None:
        """Wait for the next wake-up while warm; passivate when none comes in time."""
        self.first_stop.set()
        if not self.warm or not await self.mailbox.wait(self.host.passivate_after):
            # No await between the empty check and this flag: a wake-up from now on
            # starts a new actor instead of landing in this mailbox.
            self.accepting = False
            self.passivated = True
            raise Passivate

    # -- driving the run --------------------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """Cancel the run: the workflow is interrupted where it is and ends ``cancelled``."""
        self._cancel_reason = reason
        if self._scope is not None:
            self._scope.cancel()

    async def drive(self) -> None:
        """Run the workflow until it suspends and passivates, or ends. Never raises
        (except trio's cancellation when the runtime shuts down)."""
        try:
            await self._drive()
        except Exception:
            log.exception("run %s: the engine failed while driving it; it is left for recovery", self.run_id)
        finally:
            self.accepting = False
            self.first_stop.set()
            self.stopped.set()
            self.host.actor_stopped(self)

    async def _drive(self) -> None:
        if self.run.status not in ACTIVE:
            return
        if self.run.cancel_reason is not None and self.run.status == "running":
            self._cancel_reason = self.run.cancel_reason  # asked while nobody was running it
            await self._finish("cancelled")
            return
        error: dict[str, Any] | None = None
        output: str | None = None
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._cancel_reason is not None:
                scope.cancel()
            try:
                payload = (
                    self._payload
                    if self._payload is not _UNSET
                    else self.workflow.validate(codec.loads(self.run.payload))
                )
                ctx: RunContext[Any] = RunContext(
                    self, payload, run_id=self.run_id, workflow_id=self.workflow.id, attempt=self.run.attempt
                )
                result = await self.workflow.run(ctx)
            except Passivate:
                return
            except StepFailed as exc:
                error = self._fatal_json() or _step_error_json(exc)
            except Exception as exc:
                error = self._fatal_json() or _error_json(exc)
            else:
                error = self._fatal_json()
                if error is None and (left := ctx.unreplayed()) is not None:
                    unreplayed = NonDeterministicReplay(
                        self.run_id, ctx.position, f"{left.kind} {left.step_id!r}", None
                    )
                    error = _error_json(unreplayed)
                if error is None:
                    try:
                        output = codec.dumps(result, what="workflow output", run_id=self.run_id)
                    except WorkflowError as exc:
                        error = _error_json(exc)
        if scope.cancelled_caught or (self._cancel_reason is not None and error is None and output is None):
            await self._finish("cancelled")
        elif error is not None:
            await self._finish("failed", error=codec.dumps(error))
        else:
            await self._finish("completed", output=output)

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
        self.host.cancel_wake(self.run_id)
        # Not shielded: once queued, the write commits even if this task is cancelled while
        # it waits, and a run whose outcome did not commit is recovered and replayed.
        applied = await self._commit(Write(self.run_id, self.host.now(), run=run, require=ACTIVE))
        if applied:
            log.info("run %s %s", self.run_id, status)


_UNSET: Any = object()
_coroutine_functions: dict[Any, bool] = {}


async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Await an async step function; run a sync one in a worker thread (so it cannot block
    other runs) and await what it returns if that is awaitable."""
    try:
        is_async = _coroutine_functions[fn]
    except (KeyError, TypeError):  # TypeError: an unhashable callable
        is_async = inspect.iscoroutinefunction(fn)
        if len(_coroutine_functions) < 4096:
            with contextlib.suppress(TypeError):
                _coroutine_functions[fn] = is_async
    if is_async:
        return await fn(*args, **kwargs)
    result = await trio.to_thread.run_sync(partial(fn, *args, **kwargs))
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
    return data


def _step_error_json(exc: StepFailed) -> dict[str, Any]:
    """An uncaught StepFailed ends the run with the step's own error, not the wrapper."""
    return {
        "type": exc.error_type,
        "message": exc.error_message,
        "traceback": exc.traceback,
        "code": exc.code,
        "step_id": exc.step_id,
    }
