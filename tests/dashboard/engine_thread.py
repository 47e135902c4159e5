"""A real ``tarry.Worker`` serving a database from a background thread (its own trio run),
while the dashboard under test runs on asyncio in the main thread."""

from __future__ import annotations

import contextlib
import threading
from functools import partial
from pathlib import Path
from typing import Any

import trio

from tarry import Worker, Workflow, create_runtime, store_from_url


class WorkerThread:
    """``with WorkerThread(db, workflows):`` serves the database (a SQLite file's path or a
    PostgreSQL URL) until the block ends."""

    def __init__(self, db: Path | str, workflows: list[Workflow[Any]]) -> None:
        self.worker = Worker(create_runtime(workflows, store_from_url(db), passivate_after=0.2), grace=0.5)
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="tarry-test-worker", daemon=True)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.worker.run)
                self._ready.set()
        finally:
            await self.worker.runtime.aclose()

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError("the worker did not start serving within 15s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(partial(self.worker.stop, grace=0))
        self._thread.join(15)
        if self._error is not None:
            raise self._error
