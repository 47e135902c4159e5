"""AsyncClient: the Client's verbs to ``await``, under asyncio (a FastAPI handler, say) or trio.

Each verb runs the blocking :class:`Client` call in a worker thread with the running
library's own helper (``asyncio.to_thread``, ``trio.to_thread.run_sync``; the library is
told by ``sniffio``), so the event loop never waits for the database. :meth:`AsyncClient.result`
and :meth:`AsyncClient.wait` hold no thread while they wait: they read the run in a thread,
then sleep on the event loop until the Client's :class:`CommitWatch` says something was
committed (or a second passed), so a thousand awaited results do not take a thousand
threads (asyncio's default pool has ``min(32, cpus + 4)``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import sniffio
import trio

from .client import REREAD_EVERY, Client, EngineInfo, WorkflowInfo
from .commitwatch import CommitWatch
from .errors import InvalidArgument, WaitTimeout
from .journal import RunRow
from .limits import DEFAULT_MAX_PAYLOAD_BYTES
from .results import RunInfo, RunResult, outcome
from .workflow import Workflow

if TYPE_CHECKING:
    # Imported where it is used: `import tarry` (every `tarry` command) does not load asyncio.
    import asyncio

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """:class:`Client` for async code: the same verbs and arguments, awaited.

    Works under asyncio and trio alike (each call finds out which one runs it)::

        client = AsyncClient("orders.db")          # at startup; opening blocks briefly
        run = await client.trigger("order-fulfilment", {"order_id": "o_1"})
        output = await client.result(run.run_id, timeout=30)   # RunFailed, RunCancelled, WaitTimeout
        await client.aclose()                      # or: async with AsyncClient(...) as client:

    Args:
        path: as :class:`Client` (and ``workflows``, ``create``, ``busy_timeout``,
            ``max_payload_bytes``). The database is opened here, as ``Client(...)`` does.

    Raises:
        As :class:`Client`. Every verb raises what the Client's verb raises;
        :class:`InvalidArgument` when awaited outside asyncio and trio.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        workflows: Iterable[Workflow[Any]] | None = None,
        create: bool = True,
        busy_timeout: float = 5.0,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        #: The blocking Client underneath (for code that runs in threads anyway).
        self.sync = Client(
            path, workflows=workflows, create=create, busy_timeout=busy_timeout, max_payload_bytes=max_payload_bytes
        )

    def __repr__(self) -> str:
        return f"<AsyncClient {self.sync.store.name!r}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connections and threads. Idempotent."""
        await _in_thread(self.sync.close)

    # -- the verbs: Client's, in a thread ----------------------------------------------------

    async def trigger(
        self, workflow: Workflow[Any] | str, payload: Any = None, *, run_id: str | None = None
    ) -> RunResult:
        """:meth:`Client.trigger`: start a run; committed when this returns."""
        return await _in_thread(self.sync.trigger, workflow, payload, run_id=run_id)

    async def signal(self, run_id: str, event: str, payload: Any = None, *, dedup_key: str | None = None) -> bool:
        """:meth:`Client.signal`: send ``event`` to a run; whether it was new."""
        return await _in_thread(self.sync.signal, run_id, event, payload, dedup_key=dedup_key)

    async def cancel(self, run_id: str, *, reason: str | None = None) -> RunResult:
        """:meth:`Client.cancel`."""
        return await _in_thread(self.sync.cancel, run_id, reason=reason)

    async def retry(self, run_id: str, *, from_step: str | None = None) -> RunResult:
        """:meth:`Client.retry`."""
        return await _in_thread(self.sync.retry, run_id, from_step=from_step)

    async def prune(self, *, older_than: Any, status: str | Iterable[str] | None = None) -> int:
        """:meth:`Client.prune`."""
        return await _in_thread(self.sync.prune, older_than=older_than, status=status)

    async def get_run(self, run_id: str) -> RunInfo:
        """:meth:`Client.get_run`: everything about a run."""
        return await _in_thread(self.sync.get_run, run_id)

    async def list_runs(self, **filters: Any) -> list[RunResult]:
        """:meth:`Client.list_runs` (the same keyword filters)."""
        return await _in_thread(self.sync.list_runs, **filters)

    async def count_by_status(self) -> dict[str, int]:
        """:meth:`Client.count_by_status`."""
        return await _in_thread(self.sync.count_by_status)

    async def workflows(self) -> list[WorkflowInfo]:
        """:meth:`Client.workflows`."""
        return await _in_thread(self.sync.workflows)

    async def engine_info(self) -> EngineInfo:
        """:meth:`Client.engine_info`."""
        return await _in_thread(self.sync.engine_info)

    # -- waiting: no thread held ----------------------------------------------------------

    async def result(self, run_id: str, *, timeout: float | None = None) -> Any:
        """:meth:`Client.result`: wait until the run has ended; its output.

        Raises:
            RunFailed, RunCancelled, WaitTimeout, RunNotFound, InvalidArgument: as
            :meth:`Client.result`.
        """
        return outcome(await self._wait_row(run_id, timeout, "end"))

    async def wait(self, run_id: str, timeout: float | None = None, *, until: str = "rest") -> RunResult:
        """:meth:`Client.wait`: until the run is at rest (or has ended); where it stands."""
        return RunResult.from_row(await self._wait_row(run_id, timeout, until))

    async def _wait_row(self, run_id: str, timeout: float | None, until: str) -> RunRow:
        client = self.sync
        client._check_wait(run_id, timeout, until)
        loop = _Loop()
        commits = client._commit_watch()
        deadline = loop.now() + (math.inf if timeout is None else timeout)
        with commits.waiting(loop.wake):
            while True:
                generation = commits.generation
                row, done = await _in_thread(client._look, run_id, until)
                if done:
                    return row
                left = deadline - loop.now()
                if left <= 0:
                    assert timeout is not None
                    raise WaitTimeout(run_id, timeout, row.status, until=until)
                await loop.sleep_past(commits, generation, min(left, REREAD_EVERY))


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker thread of the running async library."""
    call = functools.partial(fn, *args, **kwargs)
    if _library() == "trio":
        return await trio.to_thread.run_sync(call)
    import asyncio

    return await asyncio.to_thread(call)


def _library() -> str:
    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        name = "none"
    if name not in ("trio", "asyncio"):
        raise InvalidArgument(f"AsyncClient runs under asyncio or trio, not {name}; use Client outside them")
    return name


class _Loop:
    """The running event loop, for one wait: its clock, and a wake-up any thread may call."""

    def __init__(self) -> None:
        self.library = _library()
        self._asyncio: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._event: asyncio.Event | trio.Event
        if self.library == "trio":
            self._token = trio.lowlevel.current_trio_token()
            self._event = trio.Event()
        else:
            import asyncio

            self._asyncio = asyncio.get_running_loop()
            self._event = asyncio.Event()

    def now(self) -> float:
        return trio.current_time() if self._asyncio is None else self._asyncio.time()

    def wake(self) -> None:
        """Called from the watching thread: set the current event on its loop."""
        if self._token is not None:
            self._token.run_sync_soon(self._set)
        elif self._asyncio is not None:
            self._asyncio.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        self._event.set()

    async def sleep_past(self, commits: CommitWatch, generation: int, timeout: float) -> None:
        """Sleep until ``commits.generation`` moved past ``generation`` (checked after a
        fresh event is in place, so a wake-up between the check and the sleep is not
        lost), at most ``timeout`` seconds."""
        if isinstance(self._event, trio.Event):
            self._event = trio.Event()
            if commits.generation != generation:
                return
            with trio.move_on_after(timeout):
                await self._event.wait()
            return
        import asyncio

        self._event.clear()
        if commits.generation != generation:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
