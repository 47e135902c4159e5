"""ChangeFeed: how a worker notices what other processes commit, without busy polling.

Clients write their change and a notice to the workers in one transaction (the store's
``client_*`` verbs). The feed reads the changes after the last one it processed
(:meth:`SharedStore.changes_after`), hands each to the runtime (:meth:`Runtime.run_changed`,
:meth:`Runtime.deliver_signal`, :meth:`Runtime.adopt`) and forgets them. On a shared store
the same call first claims runs that no live worker owns (new runs a client triggered, or
the runs of a worker that died), so takeover needs nothing else.

When to look is told by the store's :class:`ChangeWatch` (SQLite: a wake socket plus
``PRAGMA data_version``; PostgreSQL: ``LISTEN``), watched by one plain thread that wakes the
trio loop only when there is something to read: idle, the event loop sleeps. A hint that
never came costs latency, not data: the watch also says "look" every ``poll_interval``
whenever anything was committed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import trio

from .errors import LeaseLost, WorkflowError
from .journal import RunRow
from .runtime import Runtime
from .store.base import Change, ChangeWatch, SharedStore

__all__ = ["ChangeFeed"]

log = logging.getLogger("tarry.worker")


class ChangeFeed:
    """Feeds a serving runtime the changes other processes commit to its database.

    Args:
        runtime: the runtime to tell (serving).
        store: its database.
        poll_interval: seconds between the watch's own checks, the fallback to nudges.
        batch: changes read per query.
        wake_socket: let clients nudge this worker directly, where the store can.
    """

    def __init__(
        self,
        runtime: Runtime,
        store: SharedStore,
        *,
        poll_interval: float = 0.02,
        batch: int = 1000,
        wake_socket: bool = True,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.poll_interval = poll_interval
        self.batch = batch
        self.address: str | None = None
        self.last_seq = 0
        self.processed = 0  # changes handled (for tests and benchmarks)
        self._wake_socket = wake_socket
        self._watch: ChangeWatch | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._kick = trio.Event()
        self._scope: trio.CancelScope | None = None

    def open(self) -> str | None:
        """Open the store's watch; where clients nudge it (``None``: they cannot)."""
        if self._watch is None:
            self._watch = self.store.watch(self.poll_interval, wake_socket=self._wake_socket)
            self.address = self._watch.address
        return self.address

    @property
    def watching(self) -> bool:
        """Whether :meth:`close` has a thread to join or a watch to close."""
        return self._thread is not None or self._watch is not None

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def stop(self) -> None:
        """Stop feeding (changes from now on stay for the next worker)."""
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, start_after: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Process the changes after ``start_after`` (already covered by the runtime's
        recovery), then every change as it is noticed, until :meth:`stop` or cancelled.

        Raises:
            LeaseLost: the store refused a commit of this worker (another took over).
        """
        self.open()
        self.last_seq = start_after
        token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._thread is None:
                self._closing.clear()
                self._thread = threading.Thread(
                    target=self._watcher, args=(token,), name="tarry-change-watcher", daemon=True
                )
                self._thread.start()
            await self.process()
            task_status.started()
            while True:
                await self._kick.wait()
                self._kick = trio.Event()
                try:
                    await self.process()
                except LeaseLost:
                    raise
                except WorkflowError as exc:  # busy past the timeout, say: the changes stay, try again
                    log.warning("reading other processes' changes failed (%s); retrying", exc.message)
                    await trio.sleep(0.5)
                    self._kick.set()

    def _watcher(self, token: trio.lowlevel.TrioToken) -> None:
        """The watcher thread: kick the loop whenever the watch says something changed."""
        watch = self._watch
        assert watch is not None
        while not self._closing.is_set():
            if watch.wait(self.poll_interval):
                try:
                    token.run_sync_soon(self._wake)
                except trio.RunFinishedError:
                    return

    def _wake(self) -> None:
        self._kick.set()

    async def process(self) -> int:
        """Hand every change after ``last_seq`` to the runtime; forget them. Returns how many."""
        handled = 0
        while True:
            changes = await trio.to_thread.run_sync(self.store.changes_after, self.last_seq, self.batch)
            if not changes:
                return handled
            claimed = [c.run for c in changes if c.kind == "claim" and c.run is not None]
            for run in claimed:
                log.info("run %s taken over (%s, %s)", run.run_id, run.workflow_id, run.status, extra=_fields(run))
            await self.runtime.adopt(claimed)
            for change in changes:
                if change.kind != "claim":
                    await self._apply(change)
            seqs = [c.seq for c in changes if c.kind != "claim"]
            handled += len(changes)
            self.processed += len(changes)
            if seqs:
                self.last_seq = max(self.last_seq, *seqs)
                await trio.to_thread.run_sync(self.store.forget_changes, self.last_seq)
            if len(changes) < self.batch:
                return handled

    async def _apply(self, change: Change) -> None:
        run = change.run
        if run is None:
            return
        fields = _fields(run)
        if change.kind == "signal":
            signal = change.signal
            if signal is None or signal.consumed_at is not None:
                return  # already taken (by a recovery that saw it first)
            log.info("run %s received signal %r", run.run_id, signal.event, extra={**fields, "event": signal.event})
            await self.runtime.deliver_signal(signal, run)
            return
        if change.kind == "trigger":
            log.info("run %s started (%s)", run.run_id, run.workflow_id, extra=fields)
            if self.runtime.metrics is not None:
                self.runtime.metrics.run_started(run.workflow_id)
        elif change.kind == "retry":
            log.info("run %s retried (attempt %d)", run.run_id, run.attempt, extra={**fields, "attempt": run.attempt})
        elif change.kind == "cancel":
            fields["reason"] = run.cancel_reason
            if run.status == "cancelled":
                log.info("run %s cancelled: %s", run.run_id, run.cancel_reason, extra=fields)
                if self.runtime.metrics is not None:
                    self.runtime.metrics.run_ended(run.workflow_id, "cancelled")
            else:
                log.info("run %s cancel requested: %s", run.run_id, run.cancel_reason, extra=fields)
        self.runtime.run_changed(run)


def _fields(run: RunRow) -> dict[str, Any]:
    return {"run_id": run.run_id, "workflow_id": run.workflow_id, "status": run.status}
