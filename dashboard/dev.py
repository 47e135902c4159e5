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
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from engine import (
    Client,
    InvalidArgument,
    MemoryStore,
    Runtime,
    SharedStore,
    Worker,
    Workflow,
    create_runtime,
    store_from_url,
)

from .app import DashboardApp
from .source import Source

__all__ = ["DevApp", "EmbeddedWorker", "dev_runtime"]


def dev_runtime(app: Runtime | list[Workflow[Any]], db_path: str | os.PathLike[str]) -> Runtime:
    """The runtime ``tarry dev`` serves: APP's own Runtime (its default in-memory store
    swapped for the database ``db_path`` names: a SQLite file or a PostgreSQL URL), or a
    new one over APP's workflows.

    Raises:
        InvalidArgument: APP's runtime already uses a store that processes cannot share.
    """
    if not isinstance(app, Runtime):
        return create_runtime(app, store_from_url(db_path))
    if isinstance(app.store, MemoryStore):
        app.store = store_from_url(db_path)
    elif not isinstance(app.store, SharedStore):
        raise InvalidArgument(
            f"APP's runtime uses the store {app.store.name!r}; tarry dev serves a SQLite file or a PostgreSQL URL"
        )
    return app


class EmbeddedWorker:
    """Run ``worker`` (an ``engine.Worker``) as a trio guest on the current asyncio loop.

    ``start()`` returns at once: the worker stands by until it holds the database's lease
    (another worker may serve the file; the engine screen says which), then serves.
    ``stop()`` returns once it stopped: steps in progress had ``grace`` seconds to commit,
    the rest was cancelled where it stood, the lease is free and the store closed. If the
    worker fails, ``on_error`` is called with the exception.
    """

    def __init__(
        self, worker: Worker, *, grace: float = 2.0, on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        self.worker = worker
        self.grace = grace
        self.on_error = on_error
        self._token: trio.lowlevel.TrioToken | None = None
        self._done: asyncio.Future[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=self._finished,
            host_uses_signal_set_wakeup_fd=True,
        )

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            await self.worker.run()
        finally:
            with trio.CancelScope(shield=True):
                await self.worker.runtime.aclose()

    def _finished(self, outcome: Any) -> None:
        error = getattr(outcome, "error", None)
        if error is not None and self.on_error is not None:
            self.on_error(error)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def stop(self) -> None:
        """Drain and stop; idempotent."""
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
        assert isinstance(runtime.store, SharedStore)
        self.embedded = EmbeddedWorker(Worker(runtime), grace=grace, on_error=self._worker_failed)
        workflows = list(runtime.workflows.values())
        super().__init__(Source(Client(runtime.store.url, workflows=workflows), owns=True), **options)
        self.sub_title = f"dev · {runtime.store.name}"

    def on_load(self) -> None:
        self.embedded.start()

    def _worker_failed(self, error: BaseException) -> None:
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        self.notify(message, title="the embedded worker stopped", severity="error", timeout=30)

    async def action_quit(self) -> None:
        await self.embedded.stop()
        self.exit()

    async def on_unmount(self) -> None:
        await self.embedded.stop()
