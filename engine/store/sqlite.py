"""SQLiteStore: journals in one SQLite file, with group commit.

Guarantees:

- **Committed means committed.** A write method returns only after the transaction holding
  it has committed. With ``synchronous="NORMAL"`` (the default, in WAL mode) a committed
  write survives a crash of the process; the last transactions may be lost on a power cut
  or OS crash. ``synchronous="FULL"`` fsyncs every commit and survives those too, at a cost
  (here ~6.6k fsynced commits/s against ~100k without).
- **Group commit.** Writes queued while other tasks run go into one transaction: on the
  event loop with NORMAL (a commit there costs less than a thread hop), on the writer
  thread with FULL (the loop never waits for an fsync). A write that fails (say, a signal
  to a finished run) is undone alone and the others still commit. This is what lets
  thousands of concurrent runs each wait for their own commit without paying for one each.
- **Started runs first.** Under a burst of triggers, the writes of runs already started go
  into the next commit before new runs are created, ``admit_per_batch`` at a time (with
  NORMAL), so a burst does not make every run in flight wait for all of it.
- **Readers never block the writer** (WAL): reads run in trio worker threads on their own
  connections and see the last committed state.
- **Schema**: versioned with ``PRAGMA user_version`` plus a ``tarry_migrations`` table
  recording each named migration; migrations only ever append. A file written by a newer
  tarry is refused (:class:`SchemaTooNew`) and left untouched; a file that is not a tarry
  database (:class:`NotATarryDatabase`) likewise.
- The file is created readable and writable by its owner only (0600); SQLite gives its
  ``-wal`` and ``-shm`` files the same mode.
- Only JSON text is stored: any tool can read the file, and loading it cannot run code.

Schema, indexes and migrations are declared through sqlite-utils; the hot-path statements
are plain prepared SQL on the writer's connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import sqlite_utils
import trio

from ..errors import (
    LeaseLost,
    NotATarryDatabase,
    RunAlreadyExists,
    RunFinished,
    RunNotFound,
    RunStateError,
    SchemaTooNew,
    StoreBusy,
    StoreError,
    WorkflowError,
)
from ..journal import TERMINAL, EntryRow, RunRow, SignalRow, Write
from .base import Store

__all__ = ["SQLiteStore"]

log = logging.getLogger("tarry.store")

#: ``PRAGMA application_id`` of every tarry database ("TARY").
APPLICATION_ID = 0x54415259

RUN_COLUMNS = (
    "run_id, workflow_id, status, payload, created_at, updated_at, output, error, pending, "
    "wake_at, wait_event, cancel_reason, attempt"
)
#: What a read returns: the stored columns, with ``updated_at`` and ``last_step`` taken from
#: the latest journal entry when it is newer. Step writes touch only ``entries``: updating
#: the run's row as well costs ~45 us more per commit (another page into the WAL).
_LATEST = "(SELECT {} FROM entries e WHERE e.run_id = runs.run_id ORDER BY e.seq DESC LIMIT 1)"
RUN_SELECT = (
    "run_id, workflow_id, status, payload, created_at, "
    f"max(updated_at, coalesce({_LATEST.format('coalesce(e.finished_at, e.started_at)')}, 0)), "
    "output, error, pending, wake_at, wait_event, cancel_reason, attempt, "
    f"{_LATEST.format('e.step_id')}"
)
ENTRY_COLUMNS = "run_id, seq, step_id, kind, status, started_at, finished_at, output, error, detail, attempts"
SIGNAL_COLUMNS = "id, run_id, event, payload, sent_at, consumed_at, consumed_by"
#: Columns of ``runs`` that a :class:`Write` may change.
WRITABLE_RUN_COLUMNS = frozenset(
    {"status", "output", "error", "pending", "wake_at", "wait_event", "cancel_reason", "attempt"}
)


# -- migrations: append only; each runs in one transaction with its tarry_migrations row ----


def _m0001_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create(  # type: ignore[union-attr]
        {
            "run_id": str,
            "workflow_id": str,
            "status": str,
            "payload": str,
            "created_at": float,
            "updated_at": float,
            "output": str,
            "error": str,
            "pending": str,
            "wake_at": float,
            "wait_event": str,
            "cancel_reason": str,
            "attempt": int,
        },
        pk="run_id",
        not_null={"workflow_id", "status", "payload", "created_at", "updated_at", "attempt"},
    )
    db["runs"].create_index(["status", "wake_at"], index_name="runs_status_wake")
    db["runs"].create_index(["created_at"], index_name="runs_created")
    db["runs"].create_index(["status", "created_at"], index_name="runs_status_created")
    db["runs"].create_index(["workflow_id", "created_at"], index_name="runs_workflow")
    # WITHOUT ROWID (which sqlite-utils' create() cannot declare): the journal is only ever
    # read by (run_id, seq), so the primary key is the table, one B-tree less per step
    # result (~25 % less per commit).
    db.execute(
        "CREATE TABLE entries ("
        "run_id TEXT NOT NULL REFERENCES runs(run_id), seq INTEGER NOT NULL, step_id TEXT NOT NULL, "
        "kind TEXT NOT NULL, status TEXT NOT NULL, started_at FLOAT NOT NULL, finished_at FLOAT, "
        "output TEXT, error TEXT, detail TEXT, attempts INTEGER NOT NULL, "
        "PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
    )
    db["entries"].create_index(["run_id", "step_id"], unique=True, index_name="entries_step")
    db["signals"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "run_id": str,
            "event": str,
            "payload": str,
            "sent_at": float,
            "consumed_at": float,
            "consumed_by": str,
        },
        pk="id",
        not_null={"run_id", "event", "payload", "sent_at"},
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db["signals"].create_index(["run_id", "consumed_at"], index_name="signals_inbox")
    db["tarry_leases"].create(  # type: ignore[union-attr]
        {"name": str, "owner": str, "acquired_at": float, "heartbeat_at": float, "expires_at": float, "info": str},
        pk="name",
    )


def _m0002_cross_process(db: sqlite_utils.Database) -> None:
    """The tables clients and the worker share (see :mod:`engine.store.crossproc`)."""
    # Raw SQL for AUTOINCREMENT, which sqlite-utils cannot declare: a seq must never be
    # handed out twice, even after the worker deleted every row it had processed.
    db.execute(
        "CREATE TABLE tarry_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
        "run_id TEXT NOT NULL, signal_id INTEGER, at FLOAT NOT NULL)"
    )
    db["tarry_outbox"].create_index(["run_id"], index_name="tarry_outbox_run")
    db["tarry_workflows"].create(  # type: ignore[union-attr]
        {
            "id": str,
            "description": str,
            "schema_kind": str,
            "payload_schema": str,
            "published_at": float,
            "published_by": str,
        },
        pk="id",
        not_null={"schema_kind", "published_at"},
    )


def _m0003_lean_indexes(db: sqlite_utils.Database) -> None:
    """Fewer B-trees written per commit (each is a page more into the WAL; ~20 % of a
    one-run-at-a-time commit, measured with ``python -m bench --only steps``).

    - ``entries_step`` goes: a step id is checked unique in the run by the context before
      anything is written (:class:`DuplicateStepId`), the journal is read by ``seq`` only,
      and with ``INSERT OR REPLACE`` a unique index would have silently deleted the other
      row instead of failing.
    - ``runs_status_wake`` becomes partial, holding suspended runs only: creating, running
      and ending a run no longer writes it. ``due_runs`` and ``next_wake_after`` query
      ``status = 'suspended'``, so SQLite still picks it.
    """
    db.execute("DROP INDEX IF EXISTS entries_step")
    db.execute("DROP INDEX IF EXISTS runs_status_wake")
    # Raw SQL: sqlite-utils' create_index cannot declare a partial index.
    db.execute("CREATE INDEX runs_suspended_wake ON runs(status, wake_at) WHERE status = 'suspended'")


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0002_cross_process", _m0002_cross_process),
    ("0003_lean_indexes", _m0003_lean_indexes),
]
SCHEMA_VERSION = len(MIGRATIONS)


class _Op:
    """One queued write: the function to run on the writer connection and its outcome.

    ``waiter`` is the trio task parked until the op is done (``None`` once it gave up,
    cancelled), or a ``threading.Event`` for a plain-thread caller (``token`` is ``None``).
    """

    __slots__ = ("args", "error", "fn", "result", "token", "waiter")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], token: Any, waiter: Any) -> None:
        self.fn = fn
        self.args = args
        self.token = token
        self.waiter = waiter
        self.result: Any = None
        self.error: BaseException | None = None


#: Seconds of lone commits in place (see SQLiteStore._submit) before a schedule point.
LONE_YIELD_EVERY = 0.001

_STOP = object()
_CHECKPOINT = object()
_GROUPED = object()  # an op whose write went in with the batch's grouped step results


class SQLiteStore(Store):
    """Runs, journals and signal inboxes in one SQLite file.

    Args:
        path: the database file; created (mode 0600) with its schema if missing.
        synchronous: ``"NORMAL"`` (default: durable across process crashes) or ``"FULL"``
            (an fsync per commit: durable across power loss too).
        busy_timeout: seconds to wait for a lock held by another connection before
            :class:`StoreBusy` is raised.
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
    """

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
        self.path = Path(path)
        self.synchronous = sync
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        if admit_per_batch < 1:
            raise ValueError(f"admit_per_batch must be at least 1, not {admit_per_batch!r}")
        self.admit_per_batch = admit_per_batch
        self.name = f"sqlite:{self.path}"
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._fence: tuple[str, str, Callable[[], None] | None] | None = None
        self._write_lock = threading.Lock()  # held while a batch runs on the write connection
        self._conn: sqlite3.Connection | None = None  # the write connection, while open
        self._loop_token: Any = None  # the trio run whose committer task groups writes
        self._loop_ops: list[_Op] = []
        self._loop_new: list[_Op] = []  # creates of new runs, admitted a few per batch
        self._loop_wakeup: trio.Event | None = None
        self._loop_drained: trio.Event | None = None  # set by the committer once both queues are empty
        self._since_checkpoint = 0
        self._lone_since_yield = 0.0  # perf_counter() at the last yield after a lone commit
        self.checkpoint_every = checkpoint_every
        self._read_limiter = trio.CapacityLimiter(4)
        self.commits = 0  # transactions committed by the writer (for benchmarks)

    # -- life cycle -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint
        return conn

    def open_sync(self) -> None:
        """Create or check the file and start the writer thread (what :meth:`open` does)."""
        with self._open_lock:
            if self._writer is not None:
                return
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            try:
                conn = self._connect()
            except sqlite3.DatabaseError as exc:
                raise NotATarryDatabase(str(self.path), str(exc)) from None
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
            self._writer = threading.Thread(
                target=self._writer_main, args=(conn,), name="tarry-sqlite-writer", daemon=True
            )
            self._writer.start()

    async def open(self) -> None:
        if self._writer is None:
            await trio.to_thread.run_sync(self.open_sync)

    def close_sync(self) -> None:
        with self._open_lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(_STOP)
                writer.join()
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._local = threading.local()

    async def close(self) -> None:
        """Commit what this trio run has queued (the committer takes new runs a few per
        batch), then stop the writer thread and close the connections."""
        if self._loop_token is trio.lowlevel.current_trio_token() and (self._loop_ops or self._loop_new):
            drained = self._loop_drained = trio.Event()
            await drained.wait()
        await trio.to_thread.run_sync(self.close_sync)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check what the file is, switch to WAL, and apply pending migrations."""
        path = str(self.path)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise NotATarryDatabase(path, str(exc)) from None
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise NotATarryDatabase(path, f"application_id {app_id:#x}, tables: {', '.join(sorted(tables)) or 'none'}")
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(path, version, SCHEMA_VERSION)
        # WAL is persistent in the file; only switch when needed (idempotent, like sqlite-utils).
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = wal")
        db = sqlite_utils.Database(conn)
        for number, (name, migrate) in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                conn.execute("COMMIT")  # another process applied it since we looked
                continue
            try:
                if not db["tarry_migrations"].exists():
                    db["tarry_migrations"].create({"name": str, "applied_at": float}, pk="name")  # type: ignore[union-attr]
                migrate(db)
                db["tarry_migrations"].insert({"name": name, "applied_at": time.time()})  # type: ignore[union-attr]
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in the file, in order."""
        return [r[0] for r in self._reader().execute("SELECT name FROM tarry_migrations ORDER BY name")]

    # -- the writer thread --------------------------------------------------------------------

    def _writer_main(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        checkpointer = self._connect()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                if first is _CHECKPOINT:
                    self._checkpoint(checkpointer)
                    continue
                batch: list[_Op] = [first]
                stop = False
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    if item is not _CHECKPOINT:
                        batch.append(item)
                with self._write_lock:
                    self._commit(conn, batch)
                self._after_commit()
                self._deliver(batch)
                del batch, first  # nothing of a delivered batch stays reachable while idle
                if stop:
                    return
        finally:
            with self._write_lock:
                self._conn = None
            self._checkpoint(checkpointer)
            checkpointer.close()
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL back into the database file without blocking readers or writers.

        Automatic checkpoints are off on the write connection: they would run inside a
        commit, on the event loop, and fsync there.
        """
        with contextlib.suppress(sqlite3.Error):  # busy: the next one catches up
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _commit(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        """Commit ``batch`` in one transaction.

        Optimistic first: every write runs straight in the transaction. Should one raise,
        the transaction is rolled back and the batch is replayed with a savepoint per
        write, so that the failing write is undone alone and the others still commit.
        """
        if len(batch) == 1:  # a lone write needs no savepoint: its failure undoes all
            self._run_batch(conn, batch, savepoints=False, alone=True)
        elif not self._run_batch(conn, batch, savepoints=False):
            self._run_batch(conn, batch, savepoints=True)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op], *, savepoints: bool, alone: bool = False) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            error = self._map(exc)
            for op in batch:
                op.error = error
            return True
        if self._fence is not None and not self._fence_holds(conn, batch):
            return True
        if not savepoints and not alone and not self._insert_step_results(conn, batch):
            conn.execute("ROLLBACK")
            return False
        for op in batch:
            if op.result is _GROUPED:
                op.result = True
                continue
            op.result = op.error = None
            if savepoints:
                conn.execute("SAVEPOINT w")
            try:
                op.result = op.fn(conn, *op.args)
            except BaseException as exc:  # handed to the waiting task
                if not savepoints:
                    conn.execute("ROLLBACK")
                    if alone:
                        op.error = self._map(exc) if isinstance(exc, sqlite3.Error) else exc
                        return True
                    return False
                op.error = self._map(exc) if isinstance(exc, sqlite3.Error) else exc
                conn.execute("ROLLBACK TO w")
            if savepoints:
                conn.execute("RELEASE w")
        try:
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            error = self._map(exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for op in batch:
                if op.error is None:
                    op.result, op.error = None, error
        return True

    @staticmethod
    def _insert_step_results(conn: sqlite3.Connection, batch: list[_Op]) -> bool:
        """Insert the step results of the batch (writes of journal rows alone) with one
        statement, and mark those ops done; ``False`` if that failed (the caller retries
        the batch one write at a time). Step results of different runs do not depend on
        each other, nor on the other writes of a batch, so their order does not matter."""
        grouped = [op for op in batch if op.fn is _write and _only_entries(op.args[0])]
        if len(grouped) < 2:
            return True
        try:
            _insert_entry_writes(conn, [op.args[0] for op in grouped])
        except Exception:
            return False
        for op in grouped:
            op.result, op.error = _GROUPED, None
        return True

    def _deliver(self, batch: list[_Op]) -> None:
        """Wake the waiting tasks: one thread hop per trio run, not per write."""
        by_token: dict[Any, list[_Op]] = {}
        for op in batch:
            if op.token is None:
                op.waiter.set()  # a plain thread waits on a threading.Event
            else:
                by_token.setdefault(op.token, []).append(op)
        for token, ops in by_token.items():
            # A trio run that finished in the meantime has nobody waiting any more.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(_wake_all, ops)

    def set_fence(self, lease: str | None, owner: str = "", on_lost: Callable[[], None] | None = None) -> None:
        """Commit only while ``owner`` holds the lease ``lease`` (``None``: no fence).

        Every transaction then checks ``tarry_leases`` under the write lock first: once
        another process has taken the lease, nothing more commits here, whatever is queued.
        The writes of that transaction fail with :class:`LeaseLost`, and ``on_lost`` is
        called once (from the committing thread).
        """
        self._fence = None if lease is None else (lease, owner, on_lost)

    def _fence_holds(self, conn: sqlite3.Connection, batch: list[_Op]) -> bool:
        assert self._fence is not None
        lease, owner, on_lost = self._fence
        row = conn.execute("SELECT owner FROM tarry_leases WHERE name = ?", (lease,)).fetchone()
        if row is not None and row[0] == owner:
            return True
        conn.execute("ROLLBACK")
        error = LeaseLost(str(self.path), owner, None if row is None else str(row[0]))
        for op in batch:
            op.error = error
        if on_lost is not None:
            self._fence = (lease, owner, None)
            on_lost()
        return False

    async def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(write_connection, *args)`` inside a write transaction (group-committed
        with other writes); return its result once committed. For statement functions
        such as those of :mod:`engine.store.crossproc`."""
        return await self._submit(fn, *args)

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(read_connection, *args)`` in a worker thread; return its result."""
        return await self._read(fn, *args)

    def _map(self, exc: sqlite3.Error) -> WorkflowError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreBusy(str(self.path), text)
        return StoreError(f"database {str(self.path)!r}: {type(exc).__name__}: {text}", path=str(self.path))

    async def _submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._writer is None:
            await self.open()
        op = _Op(fn, args, trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
        if self.synchronous == "NORMAL":
            if self._commit_now_if_alone(op):
                # Nothing else was runnable, so a schedule point after every lone commit
                # only costs a trip round the event loop (~12 % of a run at a time). Yield
                # at least every millisecond still, for I/O and timers that came due.
                now = time.perf_counter()
                if now - self._lone_since_yield >= LONE_YIELD_EVERY:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    self._lone_since_yield = time.perf_counter()
                if op.error is not None:
                    raise op.error
                return op.result
            self._enqueue_in_loop(op)
        else:
            self._queue.put(op)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if op.fn is _create_run:
                # All or nothing, so that a cancelled trigger leaves no run that nobody
                # drives: a create still waiting for admission is dropped, one already on
                # its way in is waited for (the caller's next checkpoint raises Cancelled).
                if op in self._loop_new:
                    self._loop_new.remove(op)
                    return trio.lowlevel.Abort.SUCCEEDED
                return trio.lowlevel.Abort.FAILED
            op.waiter = None  # cancelled while waiting: the write still commits (or fails) alone
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if op.error is not None:
            raise op.error
        return op.result

    # -- group commit on the event loop (synchronous=NORMAL) -----------------------------------
    #
    # With NORMAL a WAL commit issues no fsync and costs ~20-60 us, less than the two thread
    # hops (~70 us) of handing it to the writer thread. So writes are grouped on the trio
    # thread instead: every write queued while runnable tasks run joins one batch, which a
    # system task commits when they are done, on the same connection (under the write lock
    # that the writer thread takes for writes from other threads). Checkpoints, which do
    # fsync, stay off the loop (see _checkpoint). With FULL every commit fsyncs, so the
    # batches go to the writer thread and the loop never waits on the disk.
    #
    # Creates of new runs queue apart and join a batch at most admit_per_batch at a time,
    # after every write of the runs already started. Without that, a burst of 1,000 triggers
    # runs in lock-step: 1,000 first steps, then one commit, then 1,000 sleeps, ... so each
    # run waits for the whole burst at every step and its sleeps all end in the same
    # millisecond (W2 lateness p50 48 ms; with 8 per batch, 3 ms).

    def _enqueue_in_loop(self, op: _Op) -> None:
        token = op.token
        if self._loop_token is not token:
            self._loop_token = token
            self._loop_ops = []
            self._loop_new = []
            self._loop_wakeup = None
            trio.lowlevel.spawn_system_task(self._loop_committer, name="tarry-sqlite-committer")
        if op.fn is _create_run:
            self._loop_new.append(op)
        else:
            self._loop_ops.append(op)
        if self._loop_wakeup is not None:
            self._loop_wakeup.set()
            self._loop_wakeup = None

    def _commit_now_if_alone(self, op: _Op) -> bool:
        """Commit ``op`` right here when no other task could add to its batch: a lone run
        then saves the two task switches of handing it to the committer."""
        if self._loop_ops or self._loop_new or _tasks_runnable():
            return False
        conn = self._conn
        if conn is None or not self._write_lock.acquire(blocking=False):
            return False
        try:
            self._commit(conn, [op])
        finally:
            self._write_lock.release()
        self._after_commit()
        op.args = ()
        return True

    async def _loop_committer(self) -> None:
        token = trio.lowlevel.current_trio_token()
        try:
            while self._loop_token is token:
                if not self._loop_ops and not self._loop_new:
                    if self._loop_drained is not None:
                        self._loop_drained.set()
                        self._loop_drained = None
                    self._loop_wakeup = trio.Event()
                    await self._loop_wakeup.wait()
                    continue
                # Let every task that is runnable now queue its write first.
                await trio.lowlevel.cancel_shielded_checkpoint()
                batch, self._loop_ops = self._loop_ops, []
                if self._loop_new:
                    batch += self._loop_new[: self.admit_per_batch]
                    del self._loop_new[: self.admit_per_batch]
                conn = self._conn
                if conn is None:  # closed meanwhile, from outside this trio run: nothing to write with
                    error = StoreError(
                        f"database {str(self.path)!r} was closed before this write committed; nothing of "
                        "it was written (close the store after the runtime that uses it)",
                        path=str(self.path),
                    )
                    for op in batch:
                        op.error = error
                    _wake_all(batch)
                    continue
                with self._write_lock:
                    self._commit(conn, batch)
                self._after_commit()
                _wake_all(batch)
                del batch  # an idle committer must not keep the last batch (and its runs) alive
        finally:
            if self._loop_token is token:
                self._loop_token = None
                for op in self._loop_ops + self._loop_new:  # the trio run is ending: hand leftovers to the thread
                    self._queue.put(op)
                self._loop_ops = []
                self._loop_new = []

    def _after_commit(self) -> None:
        """Ask the writer thread for a checkpoint now and then (it fsyncs: keep it off the loop)."""
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.checkpoint_every:
            self._since_checkpoint = 0
            self._queue.put(_CHECKPOINT)

    def submit_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a write from a plain thread (outside trio) and wait for its commit."""
        self.open_sync()
        op = _Op(fn, args, None, threading.Event())
        self._queue.put(op)
        op.waiter.wait()
        if op.error is not None:
            raise op.error
        return op.result

    # -- readers ----------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
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

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._writer is None:
            await self.open()
        return await trio.to_thread.run_sync(self.read_sync, fn, *args, limiter=self._read_limiter)

    # -- the store protocol -------------------------------------------------------------------

    async def create_run(self, row: RunRow) -> tuple[RunRow, bool]:
        return await self._submit(_create_run, row)  # type: ignore[no-any-return]

    async def write(self, write: Write) -> bool:
        return await self._submit(_write, write)  # type: ignore[no-any-return]

    def write_behind(self, write: Write) -> None:
        op = _Op(_write, (write,), trio.lowlevel.current_trio_token(), None)
        if self.synchronous == "NORMAL" and self._writer is not None:
            self._enqueue_in_loop(op)
        else:
            self._queue.put(op)

    async def add_signal(self, run_id: str, event: str, payload: str, sent_at: float) -> SignalRow:
        return await self._submit(_add_signal, run_id, event, payload, sent_at)  # type: ignore[no-any-return]

    async def request_cancel(self, run_id: str, reason: str, at: float) -> RunRow:
        return await self._submit(_request_cancel, run_id, reason, at)  # type: ignore[no-any-return]

    async def get_run(self, run_id: str) -> RunRow | None:
        return await self._read(_get_run, run_id)  # type: ignore[no-any-return]

    async def load(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        return await self._read(_load, run_id)  # type: ignore[no-any-return]

    async def history(self, run_id: str) -> tuple[list[EntryRow], list[SignalRow]]:
        return await self._read(_history, run_id)  # type: ignore[no-any-return]

    async def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[RunRow]:
        statuses = [status] if isinstance(status, str) else (list(status) if status is not None else None)
        return await self._read(_list_runs, statuses, workflow_id, limit, offset)  # type: ignore[no-any-return]

    async def count_by_status(self) -> dict[str, int]:
        return await self._read(_count_by_status)  # type: ignore[no-any-return]

    async def due_runs(self, until: float, limit: int = 10_000) -> list[tuple[str, float]]:
        return await self._read(_due_runs, until, limit)  # type: ignore[no-any-return]

    async def next_wake_after(self, after: float) -> float | None:
        return await self._read(_next_wake_after, after)  # type: ignore[no-any-return]

    async def runs_with_signals(self) -> list[str]:
        return await self._read(_runs_with_signals)  # type: ignore[no-any-return]

    async def running_runs(self) -> list[str]:
        return await self._read(_running_runs)  # type: ignore[no-any-return]


# trio.lowlevel.current_statistics() builds a statistics object and counts every I/O
# waiter: ~5 us, paid on each write of a run committed alone (7 % of W1 seq). The run
# queue's length is the same figure. Private to trio, so it falls back to the public call
# if trio moves it, and tests/test_sqlite_store.py checks that the two agree.
_RUN_CONTEXT: Any
try:
    from trio._core._run import GLOBAL_RUN_CONTEXT as _RUN_CONTEXT
except ImportError:  # pragma: no cover - a trio that moved it
    _RUN_CONTEXT = None


def _tasks_runnable() -> int:
    """``trio.lowlevel.current_statistics().tasks_runnable``, cheaply."""
    try:
        return len(_RUN_CONTEXT.runner.runq)
    except (AttributeError, TypeError):
        return trio.lowlevel.current_statistics().tasks_runnable


def _wake_all(ops: list[_Op]) -> None:
    for op in ops:
        waiter, op.waiter, op.args = op.waiter, None, ()
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)
        elif op.error is not None:  # a write-behind (or a cancelled waiter's write) failed
            log.warning("a write nobody waited for failed: %s", op.error)


# -- statements, run on a connection (writer ops inside the writer's transaction) -----------


def _create_run(conn: sqlite3.Connection, row: RunRow) -> tuple[RunRow, bool]:
    # Insert first and look only on a conflict: a new run (the usual case) costs no read.
    inserted = conn.execute(
        f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO NOTHING",
        (
            row.run_id,
            row.workflow_id,
            row.status,
            row.payload,
            row.created_at,
            row.updated_at,
            row.output,
            row.error,
            row.pending,
            row.wake_at,
            row.wait_event,
            row.cancel_reason,
            row.attempt,
        ),
    ).rowcount
    if inserted:
        return row, True
    existing = _get_run(conn, row.run_id)
    assert existing is not None  # the conflict was on this run_id, in this transaction
    if existing.workflow_id != row.workflow_id:
        raise RunAlreadyExists(row.run_id, existing.workflow_id)
    return existing, False


def _write(conn: sqlite3.Connection, write: Write) -> bool:
    if not _only_entries(write):
        columns = ["updated_at = ?"]
        values: list[Any] = [write.updated_at]
        for column, value in write.run.items():
            if column not in WRITABLE_RUN_COLUMNS:
                raise ValueError(f"runs.{column} cannot be written")
            columns.append(f"{column} = ?")
            values.append(value)
        sql = f"UPDATE runs SET {', '.join(columns)} WHERE run_id = ?"
        values.append(write.run_id)
        if write.require is not None:
            sql += f" AND status IN ({','.join('?' * len(write.require))})"
            values.extend(sorted(write.require))
        if conn.execute(sql, values).rowcount == 0:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (write.run_id,)).fetchone() is None:
                raise RunNotFound(write.run_id)
            return False
    for signal_id, step_id in write.consume:
        taken = conn.execute(
            "UPDATE signals SET consumed_at = ?, consumed_by = ? WHERE id = ? AND run_id = ? AND consumed_at IS NULL",
            (write.updated_at, step_id, signal_id, write.run_id),
        ).rowcount
        if taken == 0:
            raise RunStateError(f"signal {signal_id} of run {write.run_id!r} was already consumed", run_id=write.run_id)
    if write.truncate_from is not None:
        conn.execute("DELETE FROM entries WHERE run_id = ? AND seq >= ?", (write.run_id, write.truncate_from))
    if write.entries:
        _insert_entries(conn, _entry_rows(write.entries), write.run_id)
    return True


def _only_entries(write: Write) -> bool:
    """A step result alone: nothing but journal rows (the run's row is left as it is)."""
    return not (write.run or write.require is not None or write.consume or write.truncate_from is not None)


def _entry_rows(entries: list[EntryRow]) -> list[tuple[Any, ...]]:
    return [
        (
            e.run_id,
            e.seq,
            e.step_id,
            e.kind,
            e.status,
            e.started_at,
            e.finished_at,
            e.output,
            e.error,
            e.detail,
            e.attempts,
        )
        for e in entries
    ]


_INSERT_ENTRIES = f"INSERT OR REPLACE INTO entries ({ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"


def _insert_entries(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], run_id: str) -> None:
    try:
        conn.executemany(_INSERT_ENTRIES, rows)
    except sqlite3.IntegrityError as exc:
        if "FOREIGN KEY" in str(exc):  # the journal of a run that does not exist
            raise RunNotFound(run_id) from None
        raise


def _insert_entry_writes(conn: sqlite3.Connection, writes: list[Write]) -> None:
    """Many step results of many runs in one statement (the group-commit fast path)."""
    rows = [row for w in writes for row in _entry_rows(w.entries)]
    _insert_entries(conn, rows, writes[0].run_id if len(writes) == 1 else "(one of a batch)")


def _status(conn: sqlite3.Connection, run_id: str) -> str:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFound(run_id)
    return str(row[0])


def _add_signal(conn: sqlite3.Connection, run_id: str, event: str, payload: str, sent_at: float) -> SignalRow:
    status = _status(conn, run_id)
    if status in TERMINAL:
        raise RunFinished(run_id, status, "signal")
    cursor = conn.execute(
        "INSERT INTO signals (run_id, event, payload, sent_at) VALUES (?,?,?,?)", (run_id, event, payload, sent_at)
    )
    return SignalRow(int(cursor.lastrowid or 0), run_id, event, payload, sent_at)


def _request_cancel(conn: sqlite3.Connection, run_id: str, reason: str, at: float) -> RunRow:
    status = _status(conn, run_id)
    if status in TERMINAL:
        raise RunFinished(run_id, status, "cancel")
    if status == "running":
        conn.execute("UPDATE runs SET cancel_reason = ?, updated_at = ? WHERE run_id = ?", (reason, at, run_id))
    else:
        conn.execute(
            "UPDATE runs SET status = 'cancelled', cancel_reason = ?, updated_at = ?, pending = NULL, "
            "wake_at = NULL, wait_event = NULL, error = NULL WHERE run_id = ?",
            (reason, at, run_id),
        )
    row = _get_run(conn, run_id)
    assert row is not None
    return row


def _get_run(conn: sqlite3.Connection, run_id: str) -> RunRow | None:
    row = conn.execute(f"SELECT {RUN_SELECT} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else RunRow(*row)


def _entries(conn: sqlite3.Connection, run_id: str) -> list[EntryRow]:
    return [
        EntryRow(*r)
        for r in conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE run_id = ? ORDER BY seq", (run_id,))
    ]


def _load(conn: sqlite3.Connection, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
    conn.execute("BEGIN")  # one snapshot for the three reads
    try:
        run = _get_run(conn, run_id)
        if run is None:
            return None
        inbox = [
            SignalRow(*r)
            for r in conn.execute(
                f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? AND consumed_at IS NULL ORDER BY id", (run_id,)
            )
        ]
        return run, _entries(conn, run_id), inbox
    finally:
        conn.execute("COMMIT")


def _history(conn: sqlite3.Connection, run_id: str) -> tuple[list[EntryRow], list[SignalRow]]:
    conn.execute("BEGIN")
    try:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise RunNotFound(run_id)
        signals = [
            SignalRow(*r)
            for r in conn.execute(f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? ORDER BY id", (run_id,))
        ]
        return _entries(conn, run_id), signals
    finally:
        conn.execute("COMMIT")


def _run_filter(
    statuses: list[str] | None, workflow_id: str | None, search: str | None, waiting: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause shared by listing and counting runs."""
    where: list[str] = []
    values: list[Any] = []
    if statuses is not None:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        values.extend(statuses)
    if workflow_id is not None:
        where.append("workflow_id = ?")
        values.append(workflow_id)
    if waiting == "event":
        where.append("status = 'suspended' AND wait_event IS NOT NULL")
    elif waiting == "sleep":
        where.append("status = 'suspended' AND wait_event IS NULL")
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(run_id LIKE ? ESCAPE '\\' OR workflow_id LIKE ? ESCAPE '\\' OR payload LIKE ? ESCAPE '\\')")
        values.extend([pattern] * 3)
    return (" WHERE " + " AND ".join(where)) if where else "", values


def _list_runs(
    conn: sqlite3.Connection,
    statuses: list[str] | None,
    workflow_id: str | None,
    limit: int | None,
    offset: int,
    search: str | None = None,
    waiting: str | None = None,
    oldest_first: bool = False,
) -> list[RunRow]:
    """Runs newest first (``oldest_first``: the longest unchanged first, as for a queue of
    waits), filtered by status, workflow, kind of wait and a search substring of the run id,
    workflow id or payload text."""
    where, values = _run_filter(statuses, workflow_id, search, waiting)
    order = "updated_at ASC, run_id ASC" if oldest_first else "created_at DESC, run_id DESC"
    sql = f"SELECT {RUN_SELECT} FROM runs{where} ORDER BY {order} LIMIT ? OFFSET ?"
    values.extend([-1 if limit is None else limit, offset])
    return [RunRow(*r) for r in conn.execute(sql, values)]


def _count_runs(
    conn: sqlite3.Connection,
    statuses: list[str] | None,
    workflow_id: str | None,
    search: str | None = None,
    waiting: str | None = None,
) -> int:
    where, values = _run_filter(statuses, workflow_id, search, waiting)
    return int(conn.execute(f"SELECT count(*) FROM runs{where}", values).fetchone()[0])


def _count_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status"))


def _due_runs(conn: sqlite3.Connection, until: float, limit: int) -> list[tuple[str, float]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT run_id, wake_at FROM runs WHERE status = 'suspended' AND wake_at <= ? ORDER BY wake_at LIMIT ?",
            (until, limit),
        )
    ]


def _next_wake_after(conn: sqlite3.Connection, after: float) -> float | None:
    row = conn.execute("SELECT min(wake_at) FROM runs WHERE status = 'suspended' AND wake_at > ?", (after,)).fetchone()
    return None if row[0] is None else float(row[0])


def _runs_with_signals(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT r.run_id FROM runs r WHERE r.status = 'suspended' AND r.wait_event IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM signals s WHERE s.run_id = r.run_id AND s.consumed_at IS NULL AND s.event = r.wait_event)"
        )
    ]


def _running_runs(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT run_id FROM runs WHERE status = 'running'")]
