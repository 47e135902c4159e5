"""ChangeFeed: how a worker notices what other processes commit, without busy polling.

Clients write their change and an outbox row in one transaction
(:mod:`engine.store.crossproc`), then send a datagram to the worker's wake socket (a unix
datagram socket in a private temporary directory, its path published in the lease). The
feed reads the outbox rows after the last one it processed, hands each to the runtime
(:meth:`Runtime.run_changed`, :meth:`Runtime.deliver_signal`) and deletes them.

The datagram only says "look now"; the database is the source of truth. So a lost
datagram (a full queue, a client of another user that cannot reach the socket, a platform
without unix sockets) costs latency, not data: the feed also checks ``PRAGMA
data_version`` every ``poll_interval`` (20 ms), which changes whenever another connection
commits, and reads the outbox only then. Idle, that is 50 cheap checks a second and no
query.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from typing import Any

import trio

from .runtime import Runtime
from .store import crossproc
from .store.crossproc import Change
from .store.sqlite import SQLiteStore

__all__ = ["ChangeFeed"]

log = logging.getLogger("tarry.worker")


class ChangeFeed:
    """Feeds a serving runtime the changes other processes commit to its database.

    Args:
        runtime: the runtime to tell (serving).
        store: its database.
        poll_interval: seconds between ``data_version`` checks, the fallback to datagrams.
        batch: outbox rows read per query.
        wake_socket: bind a wake socket (``False``: rely on the poll alone).
    """

    def __init__(
        self,
        runtime: Runtime,
        store: SQLiteStore,
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
        self.processed = 0  # outbox rows handled (for tests and benchmarks)
        self._use_socket = wake_socket and hasattr(socket, "AF_UNIX")
        self._socket: trio.socket.SocketType | None = None
        self._dir: str | None = None
        self._kick = trio.Event()
        self._version = crossproc.DataVersion(store.path, store.busy_timeout)
        self._scope: trio.CancelScope | None = None

    async def open(self) -> str | None:
        """Bind the wake socket; its address (``None`` without one)."""
        if not self._use_socket:
            return None
        self._dir = tempfile.mkdtemp(prefix="tarry-")  # 0700: only this user can wake us
        path = os.path.join(self._dir, "wake")
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            await sock.bind(path)
        except OSError as exc:
            sock.close()
            log.warning("no wake socket (%s); noticing changes by polling every %.0f ms", exc, self.poll_interval * 1e3)
            return None
        self._socket = sock
        self.address = path
        return path

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._version.close()

    def stop(self) -> None:
        """Stop feeding (changes from now on stay in the outbox for the next worker)."""
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, start_after: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Process the outbox after ``start_after`` (already covered by the runtime's
        recovery), then every change as it is noticed, until :meth:`stop` or cancelled."""
        self.last_seq = start_after
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                if self._socket is not None:
                    nursery.start_soon(self._receive, self._socket)
                seen = self._version()
                await self.process()
                task_status.started()
                while True:
                    with trio.move_on_after(self.poll_interval):
                        await self._kick.wait()
                    kicked = self._kick.is_set()
                    if kicked:
                        self._kick = trio.Event()
                    version = self._version()
                    if kicked or version != seen:
                        seen = version  # read first: a commit during process() is seen next time
                        await self.process()

    async def _receive(self, sock: trio.socket.SocketType) -> None:
        while True:
            try:
                await sock.recv(64)
            except OSError:  # closed under us
                return
            self._kick.set()

    async def process(self) -> int:
        """Hand every outbox row after ``last_seq`` to the runtime; delete them. Returns how many."""
        handled = 0
        while True:
            changes: list[Change] = await self.store.read(crossproc.outbox_after, self.last_seq, self.batch)
            if not changes:
                return handled
            for change in changes:
                await self._apply(change)
            self.last_seq = changes[-1].seq
            handled += len(changes)
            self.processed += len(changes)
            await self.store.submit(crossproc.outbox_delete, self.last_seq)
            if len(changes) < self.batch:
                return handled

    async def _apply(self, change: Change) -> None:
        run = change.run
        if run is None:
            return
        fields: dict[str, Any] = {"run_id": run.run_id, "workflow_id": run.workflow_id, "status": run.status}
        if change.kind == "signal":
            signal = change.signal
            if signal is None or signal.consumed_at is not None:
                return  # already taken (by a recovery that saw it first)
            log.info("run %s received signal %r", run.run_id, signal.event, extra={**fields, "event": signal.event})
            await self.runtime.deliver_signal(signal, run)
            return
        if change.kind == "trigger":
            log.info("run %s started (%s)", run.run_id, run.workflow_id, extra=fields)
        elif change.kind == "retry":
            log.info("run %s retried (attempt %d)", run.run_id, run.attempt, extra={**fields, "attempt": run.attempt})
        elif change.kind == "cancel":
            fields["reason"] = run.cancel_reason
            if run.status == "cancelled":
                log.info("run %s cancelled: %s", run.run_id, run.cancel_reason, extra=fields)
            else:
                log.info("run %s cancel requested: %s", run.run_id, run.cancel_reason, extra=fields)
        self.runtime.run_changed(run)
