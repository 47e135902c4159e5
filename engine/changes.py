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
commits, and reads the outbox only then. Both are watched by one plain thread (a socket
receive with a 20 ms timeout, then a ~5 us pragma), which wakes the trio loop only when
there is something to read: idle, the event loop sleeps (waking one trio loop 50 times a
second would cost ten times more CPU than the thread does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
from typing import Any

import trio

from .errors import LeaseLost, WorkflowError
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
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._dir: str | None = None
        self._kick = trio.Event()
        self._version = crossproc.DataVersion(store.path, store.busy_timeout)
        self._scope: trio.CancelScope | None = None

    def open(self) -> str | None:
        """Bind the wake socket; its address (``None`` without one)."""
        if not self._use_socket:
            return None
        self._dir = tempfile.mkdtemp(prefix="tarry-")  # 0700: only this user can wake us
        path = os.path.join(self._dir, "wake")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            log.warning("no wake socket (%s); noticing changes by polling every %.0f ms", exc, self.poll_interval * 1e3)
            return None
        sock.settimeout(self.poll_interval)
        self._socket = sock
        self.address = path
        return path

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
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
        recovery), then every change as it is noticed, until :meth:`stop` or cancelled.

        The watching is done by a plain thread (a datagram, or ``data_version`` moving,
        every ``poll_interval``), so the event loop itself sleeps until there is work: an
        idle worker wakes the loop only for its heartbeat.
        """
        self.last_seq = start_after
        token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._thread is None:
                self._closing.clear()
                self._thread = threading.Thread(
                    target=self._watch, args=(token,), name="tarry-change-watcher", daemon=True
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
                except WorkflowError as exc:  # busy past the timeout, say: the rows stay, try again
                    log.warning("reading other processes' changes failed (%s); retrying", exc.message)
                    await trio.sleep(0.5)
                    self._kick.set()

    def _watch(self, token: trio.lowlevel.TrioToken) -> None:
        """The watcher thread: kick the loop on a datagram or when another connection committed."""
        seen = self._version()
        sock = self._socket
        while not self._closing.is_set():
            nudged = False
            if sock is not None:
                try:
                    sock.recv(64)
                    nudged = True
                    sock.setblocking(False)
                    with contextlib.suppress(OSError):  # more queued nudges say the same
                        while True:
                            sock.recv(64)
                except (TimeoutError, OSError):
                    pass
                finally:
                    with contextlib.suppress(OSError):
                        sock.settimeout(self.poll_interval)
            else:
                self._closing.wait(self.poll_interval)
            try:
                version = self._version()
            except WorkflowError as exc:  # the file is busy or gone: say so, keep watching
                log.warning("cannot watch the database for changes: %s", exc.message)
                self._closing.wait(1.0)
                continue
            if nudged or version != seen:
                seen = version  # read before the loop processes: a commit after this is seen next time
                try:
                    token.run_sync_soon(self._wake)
                except trio.RunFinishedError:
                    return

    def _wake(self) -> None:
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
