"""Testing your workflows on virtual time: :class:`TarryEnv`, and the pytest plugin's engine.

A workflow that waits two days is tested in milliseconds on trio's ``MockClock``. An
*autojumping* MockClock is not enough: it jumps to the next deadline as soon as every trio
task has been blocked for its threshold, and a task waiting for a ``def`` step's thread (or an
asyncio step, or the SQLite writer thread) is blocked, so virtual time leaps over a timeout
while the step is still working. The run then times out, or the test sees it stuck
``running``.

The design: **time moves only when every trio task is blocked and no real work is in
flight, and only inside the env's own calls.** The clock is a ``MockClock`` that never jumps
by itself (rate 0, no autojump; :func:`virtual_clock`); :meth:`TarryEnv.advance`,
:meth:`TarryEnv.wait_for_status` and :meth:`TarryEnv.result` move it, one deadline at a time,
after waiting until the runtime is quiet:

- every other trio task has been blocked for a millisecond of real time
  (``trio.testing.wait_all_tasks_blocked``), and
- no worker thread holds a token of trio's default thread limiter (a ``def`` step's
  thread, a store call through ``trio.to_thread``; an abandoned thread still holds its
  token until it returns), no asyncio step is running on the runtime's asyncio loop, and
  the SQLite writer thread has no batch it has not committed.

So a step takes no virtual time at all, however long it works in real time; timers fire in
deadline order; and between the env's calls the clock stands still, so a test that advances
one day and then signals is never overtaken by a timeout due the day after. (A step's own
``timeout=`` therefore never fires on a ``def`` step in a test: the step finishes first.)

Outside pytest::

    async def main():
        async with TarryEnv([approval]) as env:
            run_id = await env.trigger(approval, {"amount": 120})
            await env.advance("2d")
            assert (await env.get_run(run_id)).status == "completed"

    trio.run(main, clock=virtual_clock())

With pytest and pytest-trio, the ``tarry_env`` fixture does this (:mod:`tarry.pytest_plugin`).
This module is public (imported as ``tarry.testing``) but not part of ``tarry.__all__``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import trio
import trio.testing

from .durations import resolve_wake_at
from .errors import InvalidArgument, InvalidDuration, WaitTimeout, WorkflowError
from .results import HistoryEntry, RunInfo
from .runtime import Clock, Runtime
from .store import MemoryStore, SQLiteStore, Store
from .workflow import Workflow

__all__ = ["ENDED", "StatusNotReached", "TarryEnv", "parse_duration", "virtual_clock"]

#: The statuses a run ends in.
ENDED = ("completed", "failed", "cancelled")

#: Real seconds every task must have been blocked before the env calls the runtime quiet.
_CUSHION = 0.001

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class StatusNotReached(WaitTimeout):
    """:meth:`TarryEnv.wait_for_status` gave up: the run did not reach the status within the
    virtual time allowed, or nothing is scheduled that could move it (it waits for a
    signal). ``status`` and ``pending`` say where it is; a ``WaitTimeout``."""

    def __init__(
        self, run_id: str, timeout: float, status: str, wanted: tuple[str, ...], pending: Any, why: str
    ) -> None:
        WorkflowError.__init__(
            self,
            f"run {run_id!r} is {status} (pending: {pending}), not {' or '.join(wanted)}: {why}",
            run_id=run_id,
            timeout=timeout,
            status=status,
            until="/".join(wanted),
            pending=pending,
        )


def virtual_clock() -> trio.testing.MockClock:
    """A clock for ``trio.run(..., clock=virtual_clock())``: virtual time that moves only
    when a :class:`TarryEnv` moves it (a ``MockClock`` with rate 0 and no autojump)."""
    return trio.testing.MockClock(rate=0, autojump_threshold=math.inf)


def parse_duration(duration: Any) -> float:
    """Seconds in ``duration``: a number of seconds, a ``timedelta``, the engine's
    ``{"amount": 2, "unit": "days"}``, or a short string such as ``"2d"``, ``"90m"``,
    ``"1h30m"``, ``"500ms"`` (units ms, s, m, h, d, w).

    Raises:
        InvalidDuration: anything else, or a negative or non-finite amount.
    """
    if isinstance(duration, bool):
        raise InvalidDuration(duration, "a bool is not a number of seconds")
    if isinstance(duration, (int, float)):
        seconds = float(duration)
    elif isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, dict):
        now = datetime.now(UTC)
        seconds = (resolve_wake_at(duration, now) - now).total_seconds()
    elif isinstance(duration, str):
        text = duration.replace(" ", "")
        parts = _PART.findall(text)
        if not text or "".join(a + u for a, u in parts) != text:
            raise InvalidDuration(duration, "write it as a number and a unit, e.g. '2d', '90m', '1h30m', '500ms'")
        seconds = sum(float(amount) * _UNITS[unit] for amount, unit in parts)
    else:
        raise InvalidDuration(duration, f"not a number, timedelta, dict or string (got {type(duration).__name__})")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidDuration(duration, "negative or not finite")
    return seconds


class TarryEnv:
    """A runtime on virtual time for tests: trigger runs, move time, send signals, read
    journals, restart. ``async with TarryEnv(workflows, store=...) as env:`` inside a trio
    run whose clock is a ``MockClock`` (:func:`virtual_clock`; an autojumping one is
    switched to manual for the env's lifetime, and restored after).

    Args:
        workflows: what the runtime runs (more with :meth:`register`).
        store: a :class:`Store` (default a new :class:`MemoryStore`), or the path of a SQLite
            file, which :meth:`restart` opens again as a new process would.
        runtime_options: passed to :class:`Runtime` (``passivate_after``, ``identity``...).

    Raises:
        InvalidArgument: entered in a trio run whose clock is not a ``MockClock``; a store
            that is neither a Store nor a path.
    """

    def __init__(
        self,
        workflows: Iterable[Workflow[Any]] = (),
        *,
        store: Store | str | Path | None = None,
        **runtime_options: Any,
    ) -> None:
        self._workflows = list(workflows)
        if store is None:
            store = MemoryStore()
        if isinstance(store, (str, Path)):
            self._path: Path | None = Path(store)
            self._store: Store | None = None
        elif isinstance(store, Store):
            self._path, self._store = None, store
        else:
            raise InvalidArgument(f"store must be a Store or a SQLite file's path, not {type(store).__name__}")
        self._options = runtime_options
        self._runtime: Runtime | None = None
        self._stack = AsyncExitStack()
        self._nursery: trio.Nursery | None = None
        self._serving = trio.CancelScope()
        self._stopped = trio.Event()
        self._clock: trio.testing.MockClock | None = None
        self._threshold = math.inf
        # One wall clock for every runtime this env starts: a restart keeps the virtual days
        # that passed (a new Runtime would anchor virtual time to the real time.time() again).
        self._wall = Clock()

    # -- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> TarryEnv:
        clock = trio.lowlevel.current_clock()
        if not isinstance(clock, trio.testing.MockClock):
            raise InvalidArgument(
                "TarryEnv needs virtual time: run trio with clock=tarry.testing.virtual_clock() "
                "(with pytest, use the tarry_env fixture)"
            )
        self._clock, self._threshold = clock, clock.autojump_threshold
        clock.autojump_threshold = math.inf
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._serving.cancel()
            await self._stack.aclose()
        finally:
            self._nursery = None
            if self._clock is not None:
                self._clock.autojump_threshold = self._threshold

    async def _start(self) -> None:
        store = self._store if self._store is not None else SQLiteStore(self._path)  # type: ignore[arg-type]
        runtime = Runtime(self._workflows, store, **self._options)
        runtime._clock = self._wall
        assert self._nursery is not None
        # Served by a task of the env's own nursery, so that restart() may stop it from any task
        # (a runtime must be left by the task that entered it: pytest-trio's fixture and test
        # are two tasks).
        self._stopped = trio.Event()
        self._serving = trio.CancelScope()
        await self._nursery.start(self._serve, runtime, self._serving, self._stopped)
        self._runtime = runtime

    async def _serve(
        self, runtime: Runtime, scope: trio.CancelScope, stopped: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        try:
            with scope:
                async with runtime:
                    task_status.started()
                    await trio.sleep_forever()
            if self._path is not None:
                await runtime.aclose()  # closes the SQLite file; a MemoryStore lives on for restart()
        finally:
            stopped.set()

    async def _shut(self) -> None:
        self._serving.cancel()
        await self._stopped.wait()

    async def restart(self) -> None:
        """Stop the runtime and start a new one on the same store, as a process restart
        would: actors and timers in memory are gone, runs are recovered from the store. With
        a SQLite path the file is closed and opened again by a new ``SQLiteStore``."""
        await self.settle()
        await self._shut()
        await self._start()
        await self.settle()

    # -- what tests use ------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """The runtime now serving (a new one after :meth:`restart`)."""
        if self._runtime is None:
            raise InvalidArgument("the env is not entered: use `async with TarryEnv(...) as env`")
        return self._runtime

    @property
    def store(self) -> Store:
        """The store of the runtime now serving."""
        return self.runtime.store

    def register(self, *workflows: Workflow[Any]) -> None:
        """Add workflows, to this runtime and to every one :meth:`restart` starts."""
        self._workflows.extend(workflows)
        if self._runtime is not None:
            self._runtime.register(*workflows)

    def now(self) -> float:
        """Virtual time, on trio's clock (seconds)."""
        assert self._clock is not None
        return self._clock.current_time()

    async def trigger(self, workflow: Workflow[Any] | str, payload: Any = None, **options: Any) -> str:
        """Start a run (:meth:`Runtime.trigger`; ``run_id=``, ``by=``), let it go as far as
        it can without time moving, and return its id."""
        result = await self.runtime.trigger(workflow, payload, **options)
        await self.settle()
        return result.run_id

    async def signal(
        self, run_id: str, event: str, payload: Any = None, *, by: str | None = None, dedup_key: str | None = None
    ) -> bool:
        """Send a signal (:meth:`Runtime.signal`) and let the run take it; whether it was new."""
        sent = await self.runtime.signal(run_id, event, payload, by=by, dedup_key=dedup_key)
        await self.settle()
        return sent

    async def get_run(self, run_id: str) -> RunInfo:
        """Everything about a run (:meth:`Runtime.get_run`)."""
        return await self.runtime.get_run(run_id)

    async def history(self, run_id: str) -> list[HistoryEntry]:
        """The run's journal entries, in order."""
        return (await self.get_run(run_id)).history

    async def outline(self, run_id: str) -> list[tuple[str, str, str]]:
        """The run's journal as ``(kind, step_id, status)`` triples: easy to assert on."""
        return [(entry.kind, entry.step_id, entry.status) for entry in await self.history(run_id)]

    async def settle(self) -> None:
        """Wait, without moving time, until the runtime is quiet: every other task blocked
        and no thread, asyncio step or commit in flight."""
        while True:
            await trio.testing.wait_all_tasks_blocked(_CUSHION)
            if not self._busy():
                return

    async def advance(self, duration: Any) -> None:
        """Move virtual time on by ``duration`` (see :func:`parse_duration`: ``"2d"``, a
        ``timedelta``, seconds), firing every timer due on the way in deadline order and
        letting what each wakes run to quiet before the next.

        Raises:
            InvalidDuration: a duration that is not one (nothing moves).
        """
        target = self.now() + parse_duration(duration)
        while await self._step(target):
            pass

    async def wait_for_status(self, run_id: str, *statuses: str, within: Any = "30d") -> RunInfo:
        """Move time, deadline by deadline, until the run's status is one of ``statuses``
        (default: it has ended) and return it.

        Raises:
            WaitTimeout: not within ``within`` of virtual time, or nothing is scheduled
                that could move it (it waits for a signal): the message says its status
                and pending wait.
            RunNotFound: no such run.
        """
        wanted = statuses or ENDED
        seconds = parse_duration(within)
        target = self.now() + seconds
        while True:
            await self.settle()
            info = await self.get_run(run_id)
            if info.status in wanted:
                return info
            if math.isinf(trio.lowlevel.current_statistics().seconds_to_next_deadline):
                why = "nothing is scheduled that could move it (send it a signal?)"
            elif await self._step(target):
                continue
            else:
                why = f"not within {within} of virtual time"
            raise StatusNotReached(run_id, seconds, info.status, wanted, info.pending, why)

    async def result(self, run_id: str, *, within: Any = "30d") -> Any:
        """Move time until the run ends and return its output (:meth:`Runtime.result`:
        raises ``RunFailed`` or ``RunCancelled`` as it does; ``WaitTimeout`` as
        :meth:`wait_for_status`)."""
        await self.wait_for_status(run_id, *ENDED, within=within)
        return await self.runtime.result(run_id)

    # -- the clock ------------------------------------------------------------------------------

    async def _step(self, target: float) -> bool:
        """Settle, then jump to the next deadline if it is due by ``target`` (and say so), or
        to ``target`` itself (and say there is no more to do)."""
        assert self._clock is not None
        await self.settle()
        now = self.now()
        wait = trio.lowlevel.current_statistics().seconds_to_next_deadline
        if now + wait <= target:
            if wait > 0:
                self._clock.jump(wait)
            return True
        if target > now:
            self._clock.jump(target - now)
        await self.settle()
        return False

    def _busy(self) -> bool:
        if trio.to_thread.current_default_thread_limiter().borrowed_tokens:
            return True
        runtime = self._runtime
        if runtime is None:
            return False
        if runtime.asyncio_loop.in_flight:
            return True
        committer = getattr(runtime.store, "committer", None)
        return bool(committer is not None and committer.behind)
