"""``tarry dev``: a worker and the dashboard in one process, for development and demos.

The engine runs as a trio *guest* inside the Textual app's asyncio loop
(``trio.lowlevel.start_guest_run``): one thread, one loop, no locks. The dashboard still
reads through an ``engine.Client`` on the same file, like a separate process would; its
verbs (signal, cancel, retry, trigger) go straight to the embedded runtime so the run moves
at once. Quitting leaves the runtime's ``async with`` block, which cancels every actor where
it stands: whatever was committed stays, and runs still sleeping or waiting are picked up by
the next worker on the file.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from engine import RunResult, Runtime, SQLiteStore, Workflow, WorkflowError

from .app import DashboardApp
from .source import Source

__all__ = ["DevApp", "EmbeddedEngine", "EmbeddedSource", "load_workflows"]


def load_workflows(spec: str) -> list[Workflow[Any]]:
    """The workflows named by ``module:attribute`` (a Runtime, a Workflow, or a list of them).

    The current directory is importable, as with ``python -m``.

    Raises:
        ValueError: the spec is malformed or names something else.
        ImportError / AttributeError: the module or the attribute does not exist.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"APP must look like 'module:attribute', not {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if isinstance(target, Runtime):
        return list(target.workflows.values())
    if isinstance(target, Workflow):
        return [target]
    if isinstance(target, list | tuple) and target and all(isinstance(w, Workflow) for w in target):
        return list(target)
    raise ValueError(f"{spec!r} is {type(target).__name__}; expected a Runtime, a Workflow or a list of workflows")


class EmbeddedEngine:
    """Serve ``runtime`` as a trio guest run on the current asyncio loop.

    ``start()`` returns once the runtime serves (recovery done); ``stop()`` returns once
    it stopped and its store is closed. ``call(fn, *args)`` runs an async engine function
    from a worker thread and returns its result (or raises its error).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._started: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.done()

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
            with trio.CancelScope() as self._scope:
                async with self.runtime:
                    assert self._started is not None
                    if not self._started.done():
                        self._started.set_result(None)
                    await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await self.runtime.aclose()

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
        """Stop serving: actors are cancelled where they stand (nothing committed is lost)."""
        if self._done is None:
            return
        if not self._done.done() and self._token is not None and self._scope is not None:
            self._token.run_sync_soon(self._scope.cancel)
        await asyncio.shield(self._done)

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run ``await fn(*args)`` in the engine (from a thread that is not the loop's)."""
        if self._token is None or not self.running:
            raise WorkflowError("the embedded engine is not running")
        return trio.from_thread.run(fn, *args, trio_token=self._token)


class EmbeddedSource(Source):
    """Reads through the client; verbs through the embedded runtime."""

    def __init__(self, client: Any, engine: EmbeddedEngine) -> None:
        super().__init__(client, owns=True)
        self.engine = engine

    def workflows(self) -> list[dict[str, Any]]:
        return [
            {"id": wf.id, "description": wf.description, "schema": getattr(wf.schema, "json_schema", None)}
            for wf in self.engine.runtime.workflows.values()
        ]

    def signal(self, run_id: str, event: str, payload: Any = None) -> None:
        self.engine.call(self.engine.runtime.signal, run_id, event, payload)

    def cancel(self, run_id: str, *, reason: str | None = None) -> RunResult:
        return self.engine.call(lambda: self.engine.runtime.cancel(run_id, reason=reason))  # type: ignore[no-any-return]

    def retry(self, run_id: str) -> RunResult:
        return self.engine.call(self.engine.runtime.retry, run_id)  # type: ignore[no-any-return]

    def trigger(self, workflow: str, payload: Any = None) -> RunResult:
        return self.engine.call(self.engine.runtime.trigger, workflow, payload)  # type: ignore[no-any-return]


class DevApp(DashboardApp):
    """The dashboard with the engine embedded: ``tarry dev APP --db PATH``.

    Args:
        workflows: what the embedded runtime runs.
        db_path: the SQLite file (created if missing).
        runtime_options: passed to :class:`engine.Runtime` (``passivate_after`` ...).
    """

    def __init__(self, workflows: list[Workflow[Any]], db_path: str | os.PathLike[str], **options: Any) -> None:
        from engine import Client  # type: ignore[attr-defined]

        runtime_options = options.pop("runtime_options", {})
        self.engine = EmbeddedEngine(Runtime(workflows, SQLiteStore(db_path), **runtime_options))
        client = Client(os.fspath(db_path), workflows=workflows)
        super().__init__(EmbeddedSource(client, self.engine), **options)
        self.sub_title = f"dev · {os.fspath(db_path)}"

    async def on_load(self) -> None:
        await self.engine.start()

    async def action_quit(self) -> None:
        await self.engine.stop()
        self.exit()

    async def on_unmount(self) -> None:
        await self.engine.stop()
