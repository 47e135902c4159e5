"""SQLiteStore: journals in one SQLite file, shared by one worker and any number of clients.

Guarantees:

- **Committed means committed.** A write method returns only after the transaction holding
  it has committed. With ``synchronous="NORMAL"`` (the default, in WAL mode) a committed
  write survives a crash of the process; the last transactions may be lost on a power cut
  or OS crash. ``synchronous="FULL"`` fsyncs every commit and survives those too, at a cost
  (here ~6.6k fsynced commits/s against ~100k without).
- **Group commit, never blocking the loop** (:mod:`.committer`): writes queued while other
  tasks run share one transaction; a write lock held by another connection is waited for
  on the writer thread, never on the event loop.
- **Readers never block the writer** (WAL): reads run in trio worker threads on their own
  connections and see the last committed state.
- **Schema** (:mod:`.schema`): versioned and append-only; a file of a newer tarry
  (:class:`SchemaTooNew`) or of another program (:class:`NotATarryDatabase`) is refused and
  left untouched.
- The file is created readable and writable by its owner only (0600); SQLite gives its
  ``-wal`` and ``-shm`` files the same mode.
- Only JSON text is stored: any tool can read the file, and loading it cannot run code.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import trio

from ...errors import DatabaseReadOnly, InvalidArgument, NotATarryDatabase, StoreError, WorkflowError
from ...journal import AuditRow, EntryRow, Plan, RunRow, SignalRow, Write
from ..base import Change, ChangeWatch, EngineCounts, LeaseRow, PublishedWorkflow, SharedStore
from . import statements as sql
from .committer import Committer
from .faults import store_error, writable_problem
from .schema import prepare
from .watch import DataVersion, Nudger, SQLiteWatch

__all__ = ["SQLiteStore"]


class SQLiteStore(SharedStore):
    """Runs, journals and signal inboxes in one SQLite file.

    Args:
        path: the database file; created (mode 0600) with its schema if missing.
        synchronous: ``"NORMAL"`` (default: durable across process crashes) or ``"FULL"``
            (an fsync per commit: durable across power loss too).
        busy_timeout: seconds to wait for a lock held by another connection before
            :class:`StoreBusy` is raised (the waiting happens off the event loop).
        max_batch: the most writes committed in one transaction.
        admit_per_batch: with NORMAL, the most new runs (``create_run``) committed in one
            group commit on the event loop; the writes of runs already started always go
            first. Under a burst of triggers this starts runs a few at a time, so the runs
            in flight keep their latency (a step, a sleep's wake-up) instead of all
            queueing behind the burst; higher trades that latency for throughput of the
            burst. With FULL, where each commit waits for an fsync, a batch takes whatever
            queued meanwhile: admitting 8 per batch there cut W1 conc by 30 %.
        checkpoint_every: commits between two WAL checkpoints (run by the writer thread on
            a connection of its own, never on the event loop).

    Raises (from :meth:`open`, which the runtime calls for you):
        NotATarryDatabase: the file exists and was not made by tarry.
        SchemaTooNew: the file was written by a newer tarry.
        DatabaseCorrupt: the file is damaged (``PRAGMA quick_check`` fails; ~50 ms per
            100,000 runs at each open).
        DatabaseReadOnly: the file or its directory cannot be written.

    Writes that find the disk full raise :class:`DiskFull`, with nothing of them committed.
    """

    exclusive = True
    # A standby takes over within 2.5 s (plus its start) of a kill -9; renewed once a second,
    # as the 4 s lease was at ttl / 4. Only a waiting standby ever acts on an expired lease.
    lease_ttl = 2.5
    lease_renewals = 2.5

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 5.0,
        max_batch: int = 4096,
        admit_per_batch: int = 8,
        checkpoint_every: int = 256,
    ) -> None:
        sync = str(synchronous).upper()
        if sync not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if admit_per_batch < 1:
            raise ValueError(f"admit_per_batch must be at least 1, not {admit_per_batch!r}")
        self.path = Path(path)
        self.url = str(self.path)
        self.synchronous = sync
        self.busy_timeout = busy_timeout
        self.name = f"sqlite:{self.path}"
        self.committer = Committer(
            str(self.path),
            self._connect,
            synchronous=sync,
            busy_timeout=busy_timeout,
            max_batch=max_batch,
            admit_per_batch=admit_per_batch,
            checkpoint_every=checkpoint_every,
            report=self.committed,
        )
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._read_limiter = trio.CapacityLimiter(4)
        self._version: DataVersion | None = None
        self._nudge = Nudger()

    @property
    def commits(self) -> int:
        """Transactions committed (for benchmarks)."""
        return self.committer.commits

    # -- life cycle -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see Committer._checkpoint
        return conn

    def open_sync(self) -> None:
        """Create or check the file and start the writer thread (what :meth:`open` does)."""
        with self._open_lock:
            if self.committer.running:
                return
            # Refused before SQLite tries: it would open such a file read-only, or fail with
            # "unable to open database file", and the first write would fail instead.
            if problem := writable_problem(self.path):
                raise DatabaseReadOnly(str(self.path), problem)
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            try:
                conn = self._connect()
            except sqlite3.DatabaseError as exc:
                error = store_error(str(self.path), exc)
                raise (
                    error if type(error) is not StoreError else NotATarryDatabase(str(self.path), str(exc))
                ) from None
            try:
                prepare(conn, str(self.path))
            except sqlite3.Error as exc:
                conn.close()
                raise self._map(exc) from None
            except BaseException:
                conn.close()
                raise
            self.committer.start(conn)

    async def open(self) -> None:
        if not self.committer.running:
            await trio.to_thread.run_sync(self.open_sync)

    def close_sync(self) -> None:
        with self._open_lock:
            self.committer.stop()
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._local = threading.local()
            if self._version is not None:
                self._version.close()
                self._version = None
            self._nudge.close()

    async def close(self) -> None:
        """Commit what this trio run has queued (the committer takes new runs a few per
        batch), then stop the writer thread and close the connections."""
        await self.committer.drain()
        await trio.to_thread.run_sync(self.close_sync)

    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in the file, in order."""
        return [r[0] for r in self._reader().execute("SELECT name FROM tarry_migrations ORDER BY name")]

    # -- the write and read paths -------------------------------------------------------------

    async def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(write_connection, *args)`` inside a write transaction (group-committed
        with other writes); return its result once committed."""
        if not self.committer.running:
            await self.open()
        return await self.committer.submit(fn, *args)

    def submit_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a write from a plain thread (outside trio) and wait for its commit."""
        self.open_sync()
        return self.committer.submit_sync(fn, *args)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(connection, *args)`` on this thread's read connection."""
        self.open_sync()
        try:
            return fn(self._reader(), *args)
        except sqlite3.Error as exc:
            raise self._map(exc) from None
        except UnicodeEncodeError as exc:  # a lone surrogate in a run id or search text
            raise InvalidArgument(f"text that is not valid UTF-8 cannot be looked up: {exc.object!r:.80}") from None

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(read_connection, *args)`` in a worker thread; return its result."""
        if not self.committer.running:
            await self.open()
        return await trio.to_thread.run_sync(self.read_sync, fn, *args, limiter=self._read_limiter)

    def _map(self, exc: sqlite3.Error) -> WorkflowError:
        return store_error(str(self.path), exc)

    # -- the store protocol -------------------------------------------------------------------

    # The hot path: straight to the committer (one coroutine frame less per write).

    async def create_run(
        self, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
    ) -> tuple[RunRow, bool]:
        if not self.committer.running:
            await self.open()
        return await self.committer.submit(sql.create_run, row, journal, audit)  # type: ignore[no-any-return]

    async def write(self, write: Write) -> bool:
        if not self.committer.running:
            await self.open()
        return await self.committer.submit(sql.write, write)  # type: ignore[no-any-return]

    def write_behind(self, write: Write) -> None:
        self.committer.write_behind(sql.write, write)

    async def add_signal(
        self,
        run_id: str,
        event: str,
        payload: str,
        sent_at: float,
        dedup_key: str | None = None,
        by: str | None = None,
    ) -> SignalRow:
        return await self.submit(sql.add_signal, run_id, event, payload, sent_at, dedup_key, by)  # type: ignore[no-any-return]

    async def transition(
        self, run_id: str, plan: Plan, *, journal: bool = False, descendants: bool = False
    ) -> list[RunRow]:
        return await self.submit(sql.transition, run_id, plan, journal, descendants)  # type: ignore[no-any-return]

    async def get_run(self, run_id: str) -> RunRow | None:
        return await self.read(sql.get_run, run_id)  # type: ignore[no-any-return]

    async def load(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        return await self.read(sql.load, run_id)  # type: ignore[no-any-return]

    async def history(self, run_id: str) -> tuple[list[EntryRow], list[SignalRow]]:
        return await self.read(sql.history, run_id)  # type: ignore[no-any-return]

    async def audit(self, run_id: str) -> list[AuditRow]:
        return await self.read(sql.audit, run_id)  # type: ignore[no-any-return]

    async def run_info(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow], list[AuditRow]] | None:
        return await self.read(sql.run_info, run_id)  # type: ignore[no-any-return]

    async def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[RunRow]:
        statuses = [status] if isinstance(status, str) else (list(status) if status is not None else None)
        return await self.read(  # type: ignore[no-any-return]
            sql.list_runs, statuses, workflow_id, limit, offset, None, None, False, tag
        )

    async def count_by_status(self) -> dict[str, int]:
        return await self.read(sql.count_by_status)  # type: ignore[no-any-return]

    async def due_runs(self, until: float, limit: int = 10_000) -> list[tuple[str, float]]:
        return await self.read(sql.due_runs, until, limit)  # type: ignore[no-any-return]

    async def next_wake_after(self, after: float) -> float | None:
        return await self.read(sql.next_wake_after, after)  # type: ignore[no-any-return]

    async def runs_with_signals(self) -> list[str]:
        return await self.read(sql.runs_with_signals)  # type: ignore[no-any-return]

    async def prune(self, before: float, statuses: list[str], limit: int) -> int:
        return await self.submit(sql.prune, before, statuses, limit)  # type: ignore[no-any-return]

    async def running_runs(self) -> list[str]:
        return await self.read(sql.running_runs)  # type: ignore[no-any-return]

    # -- shared with other processes (SharedStore) ----------------------------------------------

    def lease_acquire(
        self, name: str, owner: str, now: float, ttl: float, info: dict[str, Any]
    ) -> tuple[bool, LeaseRow | None]:
        return self.submit_sync(sql.lease_acquire, name, owner, now, ttl, info)  # type: ignore[no-any-return]

    def lease_renew(self, name: str, owner: str, now: float, ttl: float) -> bool:
        return self.submit_sync(sql.lease_renew, name, owner, now, ttl)  # type: ignore[no-any-return]

    def lease_release(self, name: str, owner: str, now: float) -> None:
        self.submit_sync(sql.lease_release, name, owner, now)

    def leases(self) -> list[LeaseRow]:
        return self.read_sync(sql.leases)  # type: ignore[no-any-return]

    def set_owner(self, owner: str | None, on_lost: Callable[[], None] | None = None) -> None:
        if owner is None:
            self.committer.set_fence(None)
        else:
            self.committer.set_fence(self.lease_name(owner), owner, on_lost)

    def publish_workflows(self, workflows: list[dict[str, Any]], owner: str, now: float) -> None:
        self.submit_sync(sql.publish_workflows, workflows, owner, now)

    def published_workflows(self) -> list[PublishedWorkflow]:
        return self.read_sync(sql.published_workflows)  # type: ignore[no-any-return]

    def last_change(self) -> int:
        return self.read_sync(sql.last_change)  # type: ignore[no-any-return]

    def changes_after(self, after: int, limit: int) -> list[Change]:
        return self.read_sync(sql.changes_after, after, limit)  # type: ignore[no-any-return]

    def forget_changes(self, upto: int) -> None:
        self.submit_sync(sql.forget_changes, upto)

    def watch(self, poll_interval: float, *, wake_socket: bool = True) -> ChangeWatch:
        return SQLiteWatch(
            self.path, busy_timeout=self.busy_timeout, poll_interval=poll_interval, wake_socket=wake_socket
        )

    def _announce(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a client's change and read the serving worker's wake address in one
        transaction, then nudge that worker (best effort: it also polls the file)."""
        now = time.time()

        def change(conn: sqlite3.Connection) -> tuple[Any, str | None]:
            return fn(conn, *args), sql.wake_address(conn, now)

        result, address = self.submit_sync(change)
        self._nudge(address)
        return result

    def client_trigger(
        self, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
    ) -> tuple[RunRow, bool]:
        return self._announce(sql.client_trigger, row, journal, audit)  # type: ignore[no-any-return]

    def client_signal(
        self,
        run_id: str,
        event: str,
        payload: str,
        sent_at: float,
        dedup_key: str | None = None,
        by: str | None = None,
    ) -> SignalRow:
        return self._announce(sql.client_signal, run_id, event, payload, sent_at, dedup_key, by)  # type: ignore[no-any-return]

    def client_prune(self, before: float, statuses: list[str], limit: int) -> int:
        return self.submit_sync(sql.prune, before, statuses, limit)  # type: ignore[no-any-return]

    def client_transition(
        self, run_id: str, plan: Plan, *, announce: str, journal: bool = False, descendants: bool = False
    ) -> list[RunRow]:
        return self._announce(sql.transition, run_id, plan, journal, descendants, announce)  # type: ignore[no-any-return]

    def snapshot(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        return self.read_sync(sql.snapshot, run_id)  # type: ignore[no-any-return]

    def run_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        return self.read_sync(sql.run_ids_with_prefix, prefix, limit)  # type: ignore[no-any-return]

    def settled(self, run_id: str) -> tuple[RunRow, bool]:
        return self.read_sync(sql.settled, run_id)  # type: ignore[no-any-return]

    def audit_trail(self, run_id: str) -> list[AuditRow]:
        return self.read_sync(sql.audit, run_id)  # type: ignore[no-any-return]

    def query_runs(
        self,
        statuses: list[str] | None,
        workflow_id: str | None,
        limit: int | None,
        offset: int,
        search: str | None = None,
        waiting: str | None = None,
        oldest_first: bool = False,
        *,
        tag: str | None = None,
    ) -> list[RunRow]:
        return self.read_sync(  # type: ignore[no-any-return]
            sql.list_runs, statuses, workflow_id, limit, offset, search, waiting, oldest_first, tag
        )

    def count_runs(
        self,
        statuses: list[str] | None,
        workflow_id: str | None,
        search: str | None = None,
        waiting: str | None = None,
        *,
        tag: str | None = None,
    ) -> int:
        return self.read_sync(sql.count_runs, statuses, workflow_id, search, waiting, tag)  # type: ignore[no-any-return]

    def engine_counts(self) -> EngineCounts:
        return self.read_sync(sql.engine_counts)  # type: ignore[no-any-return]

    def data_version(self) -> int:
        with self._open_lock:
            if self._version is None:
                self._version = DataVersion(self.path, self.busy_timeout)
            version = self._version
        return version()

    def size_bytes(self) -> int | None:
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.stat(f"{self.path}{suffix}").st_size
        return size
