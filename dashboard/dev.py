"""``tarry dev``: a worker and the dashboard in one process, for development and demos.

An ``engine.Worker`` runs as a trio *guest* inside the Textual app's asyncio loop
(``trio.lowlevel.start_guest_run``): one thread, one loop. The dashboard talks to it as it
would from another process, through an ``engine.Client`` on the same file. Quitting drains
the worker (steps in progress get ``grace`` seconds to commit) and stops it: whatever was
committed stays, and runs still sleeping or waiting are picked up by the next worker on the
file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial
from typing import Any

import trio

from engine import Client, InvalidArgument, MemoryStore, Runtime, SQLiteStore, Worker, Workflow

from .app import DashboardApp
from .source import Source

__all__ = ["DevApp", "EmbeddedWorker", "dev_runtime"]


def dev_runtime(app: Runtime | list[Workflow[Any]], db_path: str | os.PathLike[str]) -> Runtime:
    """The runtime ``tarry dev`` serves: APP's own Runtime (its default in-memory store
    swapped for the SQLite file), or a new one over APP's workflows.

    Raises:
        InvalidArgument: APP's runtime already uses another store than a SQLite file.
    """
    if not isinstance(app, Runtime):
        return Runtime(app, SQLiteStore(db_path))
    if isinstance(app.store, MemoryStore):
        app.store = SQLiteStore(db_path)
    elif not isinstance(app.store, SQLiteStore):
        raise InvalidArgument(f"APP's runtime uses the store {app.store.name!r}; tarry dev serves a SQLite file")
    return app


class EmbeddedWorker:
    """Run ``worker`` (an ``engine.Worker``) as a trio guest on the current asyncio loop.

    ``start()`` returns once the worker serves (it holds the lease and recovered every
    unfinished run); ``stop()`` returns once it stopped: steps in progress had ``grace``
    seconds to commit, the rest was cancelled where it stood, the lease is free and the
    store closed.
    """

    def __init__(self, worker: Any, *, grace: float = 2.0) -> None:
        self.worker = worker
        self.grace = grace
        self._token: trio.lowlevel.TrioToken | None = None
        self._started: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started, self._done = loop.create_future(), loop.create_future()
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=self._finished,
            host_uses_signal_set_wakeup_fd=True,
        )
        await asyncio.shield(self._started)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.worker.run)
                assert self._started is not None
                self._started.set_result(None)
        finally:
            with trio.CancelScope(shield=True):
                await self.worker.runtime.aclose()

    def _finished(self, outcome: Any) -> None:
        for future in (self._started, self._done):
            if future is None or future.done():
                continue
            try:
                outcome.unwrap()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

    async def stop(self) -> None:
        """Drain and stop (idempotent); re-raises what the worker failed with, if it did."""
        if self._done is None:
            return
        if not self._done.done() and self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(partial(self.worker.stop, grace=self.grace))
        await asyncio.shield(self._done)


class DevApp(DashboardApp):
    """The dashboard with a worker embedded: ``tarry dev APP --db PATH``.

    The worker is a real ``engine.Worker`` (lease, heartbeat, change feed), so the
    dashboard's verbs go through its ``engine.Client`` exactly as from another process.

    Args:
        app: a Runtime (see :func:`dev_runtime`) or the workflows to run.
        db_path: the SQLite file (created if missing).
        grace: seconds steps in progress get to finish on quit.
        options: passed to :class:`DashboardApp`.
    """

    def __init__(
        self,
        app: Runtime | list[Workflow[Any]],
        db_path: str | os.PathLike[str],
        *,
        grace: float = 2.0,
        **options: Any,
    ) -> None:
        runtime = dev_runtime(app, db_path)
        assert isinstance(runtime.store, SQLiteStore)
        self.embedded = EmbeddedWorker(Worker(runtime), grace=grace)
        workflows = list(runtime.workflows.values())
        super().__init__(Source(Client(runtime.store.path, workflows=workflows), owns=True), **options)
        self.sub_title = f"dev · {runtime.store.path}"

    async def on_load(self) -> None:
        await self.embedded.start()

    async def action_quit(self) -> None:
        await self.embedded.stop()
        self.exit()

    async def on_unmount(self) -> None:
        await self.embedded.stop()
