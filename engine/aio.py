"""Steps on asyncio: :func:`asyncio_step` and the loop each runtime runs them on.

Workflows and steps run on trio. A step written against an asyncio library (aiohttp,
asyncpg, redis.asyncio, SQLAlchemy's asyncio mode, ``asyncio.sleep``) needs an asyncio loop
instead: marked with :func:`asyncio_step`, its coroutine runs as an asyncio task while the
run's trio task waits for it.

- When trio runs as a guest of an asyncio loop through ``tarry.hosted`` (``tarry dev``
  too), the task runs on that host loop: the step shares the application's loop, its connection pools and
  its clients.
- Otherwise (``tarry worker``, ``async with runtime:`` under ``trio.run``) each runtime starts
  one asyncio loop in a thread of its own the first time it needs one, and stops it when it
  stops serving (or is closed).

Cancellation goes both ways: a cancelled trio side (the run cancelled, a step ``timeout``, the
workflow's deadline, the runtime stopping) cancels the asyncio task and waits for it to end
(its ``finally`` blocks run) before the cancellation goes on, so a task that swallows
``CancelledError`` holds its run up; a task cancelled on the asyncio side fails the attempt
with :class:`AsyncioStepCancelled`.

An unmarked step that reaches for asyncio fails its run with :class:`NeedsAsyncio`, which
names the step and this fix, instead of asyncio's "no running event loop".
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .errors import AsyncioStepCancelled, InvalidArgument, NeedsAsyncio

if TYPE_CHECKING:
    # Imported where it is used: `import tarry` (every `tarry` command) does not load
    # asyncio (~20 ms) unless a step or a host needs it.
    import asyncio

__all__ = ["AsyncioLoop", "asyncio_step", "is_asyncio_step", "needs_asyncio"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__tarry_asyncio_step__"


def asyncio_step(fn: F) -> F:
    """Mark a step function to run on an asyncio loop instead of trio::

        @tarry.asyncio_step
        async def fetch(url: str) -> dict:
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as response:
                    return await response.json()

        await ctx.step("fetch", fetch, url)
        await ctx.step("get", tarry.asyncio_step(redis.get), key)  # a library's coroutine

    ``fn`` is called on the asyncio loop (see the module docstring for which); what it
    returns is awaited there if it is awaitable. The marked function still works as before
    when awaited from asyncio code. Everything else about the step is as for any step:
    ``retry``, ``timeout``, ``ctx.gather``, the result committed before the workflow goes on.

    Raises:
        InvalidArgument: ``fn`` is not callable.
    """
    if not callable(fn):
        raise InvalidArgument(f"asyncio_step takes a function, not {fn!r}")
    if is_asyncio_step(fn):
        return fn

    @functools.wraps(fn)
    async def on_asyncio(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    setattr(on_asyncio, _MARK, True)
    return on_asyncio  # type: ignore[return-value]


def is_asyncio_step(fn: Any) -> bool:
    """Whether ``fn`` was marked by :func:`asyncio_step`."""
    return getattr(fn, _MARK, False) is True


def needs_asyncio(exc: BaseException, run_id: str, step_id: str) -> NeedsAsyncio | None:
    """The :class:`NeedsAsyncio` error for an exception that an unmarked step raised because
    it used asyncio on trio (``None`` for any other exception): asyncio's "no running event
    loop", or trio refusing what an asyncio await handed it (an asyncio future, when trio
    is an asyncio loop's guest; the bare yield of ``asyncio.sleep(0)``)."""
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, RuntimeError) and "no running event loop" in str(error):
            return NeedsAsyncio(run_id, step_id, f"{type(error).__name__}: {error}")
        if isinstance(error, TypeError) and "unrecognized yield message" in str(error):
            said = str(error).split(". ", 1)[0]  # "trio.run received unrecognized yield message <Future ...>"
            return NeedsAsyncio(run_id, step_id, f"{type(error).__name__}: {said}")
    return None


class AsyncioLoop:
    """Where one runtime's asyncio steps run: the loop that hosts trio as a guest, else a
    loop of its own in a thread (started on first use, stopped by :meth:`aclose`)."""

    def __init__(self) -> None:
        #: The asyncio loop trio runs as a guest of (set by ``AsyncioHost`` while it hosts).
        #: Not guessed from ``asyncio.get_running_loop()``: ``trio.run`` called from inside
        #: a running loop (a notebook cell) would see a loop that it blocks.
        self.host: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        #: Steps running on the asyncio loop now (tarry.testing holds virtual time still while any is).
        self.in_flight = 0

    def _target(self) -> asyncio.AbstractEventLoop:
        if self.host is not None:
            return self.host
        if self._loop is None:
            import asyncio

            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=_serve_loop, args=(loop,), name="tarry-asyncio", daemon=True)
            self._thread.start()
            self._loop = loop
        return self._loop

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], step: str) -> Any:
        """Run ``fn(*args, **kwargs)`` as a task on the asyncio loop and return its result
        (or raise its exception, as it is). ``step`` names the step in errors.

        Raises:
            AsyncioStepCancelled: the task was cancelled on the asyncio side.
        """
        import asyncio

        loop = self._target()
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        tasks: list[asyncio.Future[Any]] = []

        def finished(_: asyncio.Future[Any]) -> None:  # on the asyncio loop
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        def start() -> None:  # on the asyncio loop
            task: asyncio.Future[Any]
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result, loop=loop)
                else:
                    task = loop.create_future()
                    task.set_result(result)
            except Exception as exc:
                task = loop.create_future()
                task.set_exception(exc)
            tasks.append(task)
            task.add_done_callback(finished)

        def cancel() -> None:  # on the asyncio loop, always after start()
            tasks[0].cancel()

        loop.call_soon_threadsafe(start)
        self.in_flight += 1
        try:
            await done.wait()
        except trio.Cancelled:
            loop.call_soon_threadsafe(cancel)
            with trio.CancelScope(shield=True):
                await done.wait()  # the task's own cleanup runs before the cancellation goes on
            raise
        finally:
            self.in_flight -= 1
        task = tasks[0]
        if task.cancelled():
            raise AsyncioStepCancelled(step)
        return task.result()

    async def aclose(self) -> None:
        """Stop this runtime's own loop, if it started one (its tasks are cancelled and
        awaited, as ``asyncio.run`` does); the next asyncio step starts a new one."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)


def _serve_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The thread of a runtime's own asyncio loop: run it until stopped, then finish as
    ``asyncio.run`` does (cancel what is left, close async generators and the executor)."""
    import asyncio

    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
