"""Hosting a Runtime or a Worker inside an asyncio application (FastAPI, Textual, aiohttp).

tarry runs on trio. An asyncio application hosts it as a trio *guest* of its own loop
(``trio.lowlevel.start_guest_run``): one thread, one loop, trio's tasks scheduled among the
application's callbacks. :class:`AsyncioHost` starts the guest, serves the runtime in it,
and offers the runtime's verbs as asyncio coroutines that hop into trio and back::

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with tarry.hosted(runtime) as host:
            app.state.tarry = host
            yield

    @app.post("/expenses")
    async def submit(expense: dict):
        run = await app.state.tarry.trigger("expense-approval", expense)
        return {"run_id": run.run_id, "status": run.status}

While hosted, ``asyncio_step`` steps run on the application's own loop. ``tarry dev`` hosts
its worker the same way inside the dashboard's loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import trio

from .errors import HostNotServing, InvalidArgument
from .results import RunInfo, RunResult
from .runtime import Runtime
from .worker import Worker, _only_error
from .workflow import Workflow

if TYPE_CHECKING:
    import asyncio  # imported where used: `import tarry` does not load asyncio

__all__ = ["AsyncioHost", "hosted"]

P = ParamSpec("P")
T = TypeVar("T")


class _Call:
    """One hop into trio: its cancel scope, once it runs, and whether asyncio gave it up."""

    __slots__ = ("cancelled", "scope")

    def __init__(self) -> None:
        self.scope: trio.CancelScope | None = None
        self.cancelled = False

    def cancel(self) -> None:  # in trio
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class AsyncioHost:
    """Serves ``target`` as a trio guest of the running asyncio loop; build it with
    :func:`hosted`.

    ``target`` is a :class:`Runtime` (served as ``async with runtime:``; any store) or a
    :class:`Worker` (lease, heartbeat, the change feed: processes sharing its database, such
    as the ``tarry`` CLI, reach it as they reach ``tarry worker``).

    ``async with host:`` returns once the runtime serves (a worker first holds its lease)
    and, on exit, drains (steps in progress get ``grace`` seconds to commit), stops and
    closes the store. ``start()`` and ``stop()`` do the same in two halves for hosts that
    cannot wrap their life in one block (``tarry dev`` starts the worker as the app loads
    and does not wait for the lease).

    Args:
        target: the Runtime or Worker to serve.
        grace: seconds steps in progress get to finish when stopping; default: the
            worker's ``grace``, or 10 s for a Runtime.
        on_error: called (on the loop) with the exception if the runtime fails.

    Attributes:
        runtime: the Runtime served (a Worker's own).
        state: ``idle``, ``starting``, ``serving`` or ``stopped``.
        error: the exception the runtime failed with, once it stopped (else ``None``).

    Raises:
        InvalidArgument: ``target`` is neither a Runtime nor a Worker, or a bad ``grace``.
    """

    def __init__(
        self,
        target: Runtime | Worker,
        *,
        grace: float | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if isinstance(target, Worker):
            self.worker: Worker | None = target
            self.runtime = target.runtime
        elif isinstance(target, Runtime):
            self.worker = None
            self.runtime = target
        else:
            raise InvalidArgument(f"hosted() serves a Runtime or a Worker, not {target!r}")
        if grace is not None and not grace >= 0:
            raise InvalidArgument(f"grace must be a number of seconds >= 0, not {grace!r}")
        default = target.grace if isinstance(target, Worker) else 10.0
        self.grace = float(default if grace is None else grace)
        self.on_error = on_error
        self.state = "idle"
        self.error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._calls: trio.Nursery | None = None
        self._stop_event = trio.Event()
        self._stop_wanted = False
        self._ready: asyncio.Future[None] | None = None  # done once serving, or stopped
        self._done: asyncio.Future[None] | None = None  # done once the guest run ended

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the guest run on the running asyncio loop; returns at once.

        Raises:
            InvalidArgument: no asyncio loop runs in this thread, or the host was started
                before (a host serves once).
        """
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise InvalidArgument(
                "an AsyncioHost starts inside a running asyncio loop (async def, under asyncio)"
            ) from None
        if self._done is not None:
            raise InvalidArgument("this host was started already; a host serves once: make a new one")
        self._ready, self._done = loop.create_future(), loop.create_future()
        self.state = "starting"
        self.runtime.asyncio_loop.host = loop  # its asyncio steps run on this loop
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=self._finished,
            host_uses_signal_set_wakeup_fd=True,
        )

    async def serving(self) -> None:
        """Wait until the runtime serves.

        Raises:
            WorkflowError: the runtime's own error (with its type), if it failed first.
            HostNotServing: it stopped before serving.
        """
        import asyncio

        if self._ready is None:
            raise HostNotServing("not started")
        await asyncio.shield(self._ready)
        if self.state != "serving":
            if self.error is not None:
                raise self.error
            raise HostNotServing(self.state)

    async def stop(self) -> None:
        """Drain (``grace``), stop and close the store; returns once the guest run ended.
        Idempotent; a no-op on a host never started."""
        import asyncio

        if self._done is None:
            return
        self._stop_wanted = True
        if not self._done.done() and self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._request_stop)
        await asyncio.shield(self._done)

    async def __aenter__(self) -> AsyncioHost:
        self.start()
        try:
            await self.serving()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if exc is None and self.error is not None:
            raise self.error

    # -- the guest run ---------------------------------------------------------------------------

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            await self._serve()
        except BaseExceptionGroup as group:  # one engine error from inside the nursery: raise it as is
            raise _only_error(group) from None
        finally:
            with trio.CancelScope(shield=True):
                await self.runtime.aclose()

    async def _serve(self) -> None:
        async with trio.open_nursery() as calls:
            self._calls = calls
            if self._stop_wanted:
                self._request_stop()
            try:
                if self.worker is not None:
                    await self.worker.run(task_status=_Started(self))
                else:
                    await self._serve_runtime()
            finally:
                self._calls = None
                calls.cancel_scope.cancel()  # calls still in flight end with HostNotServing

    async def _serve_runtime(self) -> None:
        async with self.runtime:
            self._now_serving()
            await self._stop_event.wait()
            if self.grace > 0:
                await self.runtime.drain(self.grace)

    def _now_serving(self) -> None:  # in trio, on the loop's thread
        self.state = "serving"
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _request_stop(self) -> None:  # in trio
        if self.worker is not None:
            self.worker.stop(grace=self.grace)
        else:
            self._stop_event.set()

    def _finished(self, outcome: Any) -> None:  # on the loop, once the guest run ended
        self.state = "stopped"
        self.runtime.asyncio_loop.host = None
        error = getattr(outcome, "error", None)
        if error is not None:
            self.error = error
            if self.on_error is not None:
                self.on_error(error)
        for future in (self._ready, self._done):
            if future is not None and not future.done():
                future.set_result(None)

    # -- calls into trio ---------------------------------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` in the trio guest and return its result: any
        coroutine function of the runtime (``host.call(host.runtime.retry, run_id)``).

        Exceptions keep their type. Cancelling the awaiting asyncio task cancels the call in
        trio.

        Raises:
            HostNotServing: the runtime does not serve (not yet, or any more), or stopped
                while the call ran.
        """
        import asyncio

        token, calls = self._token, self._calls
        if self.state != "serving" or token is None or calls is None:
            raise HostNotServing(self.state) from self.error
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        call = _Call()
        try:
            token.run_sync_soon(self._spawn, call, fn, args, kwargs, future)
        except trio.RunFinishedError:
            raise HostNotServing("stopped") from self.error
        try:
            return await future
        except asyncio.CancelledError:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(call.cancel)
            raise

    def _spawn(
        self, call: _Call, fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any, future: asyncio.Future[Any]
    ) -> None:  # in trio
        if self._calls is None:
            _settle(future, None, self)
        else:
            self._calls.start_soon(self._run_call, call, fn, args, kwargs, future)

    async def _run_call(
        self, call: _Call, fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any, future: asyncio.Future[Any]
    ) -> None:
        outcome: tuple[bool, Any] | None = None
        try:
            with trio.CancelScope() as scope:
                call.scope = scope
                if call.cancelled:
                    scope.cancel()
                try:
                    outcome = (True, await fn(*args, **kwargs))
                except Exception as exc:
                    outcome = (False, exc)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop was closed under us
                future.get_loop().call_soon_threadsafe(_settle, future, outcome, self)

    # -- the verbs, as asyncio coroutines ------------------------------------------------------------

    async def trigger(
        self, workflow: Workflow[Any] | str, payload: Any = None, *, run_id: str | None = None
    ) -> RunResult:
        """:meth:`Runtime.trigger` from asyncio: returns when the run first suspends or ends."""
        return await self.call(self.runtime.trigger, workflow, payload, run_id=run_id)

    async def signal(self, run_id: str, event: str, payload: Any = None, *, dedup_key: str | None = None) -> bool:
        """:meth:`Runtime.signal` from asyncio: whether the signal was new."""
        return await self.call(self.runtime.signal, run_id, event, payload, dedup_key=dedup_key)

    async def get_run(self, run_id: str) -> RunInfo:
        """:meth:`Runtime.get_run` from asyncio."""
        return await self.call(self.runtime.get_run, run_id)

    async def cancel(self, run_id: str, *, reason: str | None = None) -> RunResult:
        """:meth:`Runtime.cancel` from asyncio."""
        return await self.call(self.runtime.cancel, run_id, reason=reason)


class _Started:
    """The ``task_status`` a hosted Worker reports to once it serves."""

    def __init__(self, host: AsyncioHost) -> None:
        self._host = host

    def started(self, value: None = None) -> None:
        self._host._now_serving()


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any] | None, host: AsyncioHost) -> None:
    """Hand a call's outcome to the asyncio side (on its loop)."""
    if future.done():  # the awaiting task was cancelled
        return
    if outcome is None:
        error = HostNotServing("stopped while the call ran")
        error.__cause__ = host.error
        future.set_exception(error)
    elif outcome[0]:
        future.set_result(outcome[1])
    else:
        future.set_exception(outcome[1])


def hosted(target: Runtime | Worker, *, grace: float | None = None) -> AsyncioHost:
    """Host ``target`` (a Runtime or a Worker) in the running asyncio loop::

        async with tarry.hosted(runtime) as host:
            run = await host.trigger("expense-approval", {"amount": 120})
            await host.signal(run.run_id, "decision", {"approved": True})
            info = await host.get_run(run.run_id)

    See :class:`AsyncioHost`; ``grace`` is as there.
    """
    return AsyncioHost(target, grace=grace)
