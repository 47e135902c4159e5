"""``tarry dev``: a worker and the dashboard in one process, for development and demos.

A ``tarry.Worker`` runs as a trio *guest* inside the Textual app's asyncio loop
(``tarry.AsyncioHost``, what ``tarry.hosted`` offers any asyncio app): one thread, one
loop. The dashboard talks to it as it would from another process, through an
``tarry.Client`` on the same file. Quitting drains
the worker (steps in progress get ``grace`` seconds to commit) and stops it: whatever was
committed stays, and runs still sleeping or waiting are picked up by the next worker on the
file.
"""

from __future__ import annotations

import os
from typing import Any

from tarry import (
    AsyncioHost,
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

__all__ = ["DevApp", "dev_runtime"]


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


class DevApp(DashboardApp):
    """The dashboard with a worker embedded: ``tarry dev APP --db PATH``.

    The worker is a real ``tarry.Worker`` (lease, heartbeat, change feed), so the
    dashboard's verbs go through its ``tarry.Client`` exactly as from another process.

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
        # Started as the app loads, without waiting for the lease: a standby shows as such.
        self.embedded = AsyncioHost(Worker(runtime), grace=grace, on_error=self._worker_failed)
        workflows = list(runtime.workflows.values())
        super().__init__(Source(Client(runtime.store.url, workflows=workflows), owns=True), **options)
        self.sub_title = f"dev · {runtime.store.name}"

    def on_load(self) -> None:
        self.embedded.start()

    def describe_workers(self) -> str:
        """As the dashboard's, and while the embedded worker stands by (another worker
        serves the database), which worker that is: runs here are driven there, not by
        this process's code."""
        worker = self.embedded.worker
        state = None if worker is None else worker.state
        if state == "standby":
            holder = self.source.engine_info().get("worker") or "another process"
            return f"tarry dev stands by: worker {holder} serves this database; this one takes over when it stops."
        if state in ("idle", "starting", "serving"):
            return ""
        return super().describe_workers()

    def _worker_failed(self, error: BaseException) -> None:
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        self.notify(message, title="the embedded worker stopped", severity="error", timeout=30)

    async def action_quit(self) -> None:
        await self.embedded.stop()
        self.exit()

    async def on_unmount(self) -> None:  # type: ignore[override]  # Textual calls each class's handler, async or not
        await self.embedded.stop()
