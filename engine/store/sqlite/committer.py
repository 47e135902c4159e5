"""The committer: the one way writes reach a tarry SQLite file.

Guarantees:

- **Group commit.** Writes queued while other tasks run go into one transaction: on the
  event loop with ``synchronous=NORMAL`` (a commit there costs less than a thread hop), on
  the writer thread with FULL (the loop never waits for an fsync). A write that fails (say,
  a signal to a finished run) is undone alone and the others still commit.
- **The event loop never waits for a lock.** On the loop, the write connection never
  waits for SQLite's write lock (``busy_timeout`` 0): when another connection (a Client,
  another process, a ``sqlite3`` shell) holds it, the batch is handed to the writer thread,
  which waits for the lock up to ``busy_timeout`` while timers, signals and the dashboard
  go on; every later write follows it there until the thread has caught up, so writes
  still commit in the order they were queued.
- **Started runs first.** Creates of new runs queue apart and join a batch at most
  ``admit_per_batch`` at a time, after every write of the runs already started.
- **Fenced.** With a fence set (:meth:`Committer.set_fence`), every transaction first
  checks that the worker still holds its lease; once another took it, nothing more commits.
- Checkpoints (which fsync) run on the writer thread on a connection of their own.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from ...errors import LeaseLost, StoreError, WorkflowError
from ..queued import Op, deliver, wake_all
from . import statements as sql
from .faults import store_error

__all__ = ["Committer"]

log = logging.getLogger("tarry.store")

#: Seconds of lone commits in place before a schedule point (see Committer.submit).
LONE_YIELD_EVERY = 0.001

_STOP = object()
_CHECKPOINT = object()
_GROUPED = object()  # an op whose write went in with the batch's grouped step results


class _Busy(Exception):
    """Another connection holds the write lock: the loop hands the batch to the thread."""


class Committer:
    """Commits writes to one SQLite file (see the module's guarantees).

    Args:
        path: the file (for error messages).
        connect: opens a connection to it (each with the store's pragmas).
        synchronous: ``"NORMAL"`` (group commit on the event loop) or ``"FULL"`` (on the
            writer thread).
        busy_timeout: seconds the writer thread waits for a lock another connection holds
            before the batch fails with :class:`StoreBusy`.
    """

    def __init__(
        self,
        path: str,
        connect: Callable[[], sqlite3.Connection],
        *,
        synchronous: str,
        busy_timeout: float,
        max_batch: int,
        admit_per_batch: int,
        checkpoint_every: int,
        report: Callable[[int, float], None] | None = None,
    ) -> None:
        self.path = path
        self._report = report  # told (writes, seconds) of each transaction that committed
        self._connect = connect
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.admit_per_batch = admit_per_batch
        self.checkpoint_every = checkpoint_every
        self.commits = 0  # transactions committed (for benchmarks)
        self.handoffs = 0  # batches the loop handed to the thread because of a lock (for tests)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None  # the write connection, while open
        self._write_lock = threading.Lock()  # held while a batch runs on the write connection
        self._fence: tuple[str, str, Callable[[], None] | None] | None = None
        self._behind = 0  # batches handed to the thread and not yet committed
        self._behind_lock = threading.Lock()
        self._since_checkpoint = 0
        self._lone_since_yield = 0.0  # perf_counter() at the last yield after a lone commit
        self._loop_token: Any = None  # the trio run whose committer task groups writes
        self._loop_ops: list[Op] = []
        self._loop_new: list[Op] = []  # creates of new runs, admitted a few per batch
        self._loop_wakeup: trio.Event | None = None
        self._loop_drained: trio.Event | None = None  # set by the committer once both queues are empty

    @property
    def running(self) -> bool:
        return self._writer is not None

    @property
    def behind(self) -> bool:
        """Whether the writer thread holds batches not yet committed (tarry.testing holds
        virtual time still while it does)."""
        return self._behind > 0

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, conn: sqlite3.Connection) -> None:
        """Start the writer thread on ``conn``, the write connection (already prepared)."""
        # The loop must never wait for a lock: it tries once and hands off (see _commit_in_loop);
        # the writer thread does its own waiting, with backoff (see _begin).
        conn.execute("PRAGMA busy_timeout = 0")
        self._writer = threading.Thread(target=self._writer_main, args=(conn,), name="tarry-sqlite-writer", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Commit what the thread has queued, then stop it (from any thread but the writer)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(_STOP)
            writer.join()

    async def drain(self) -> None:
        """Wait until what this trio run queued on the loop has committed."""
        if self._loop_token is trio.lowlevel.current_trio_token() and (self._loop_ops or self._loop_new):
            drained = self._loop_drained = trio.Event()
            await drained.wait()

    def set_fence(self, lease: str | None, owner: str = "", on_lost: Callable[[], None] | None = None) -> None:
        """Commit only while ``owner`` holds the lease ``lease`` (``None``: no fence).

        Every transaction then checks ``tarry_leases`` under the write lock first: once
        another process has taken the lease, nothing more commits here, whatever is queued.
        The writes of that transaction fail with :class:`LeaseLost`, and ``on_lost`` is
        called once (from the committing thread).
        """
        self._fence = None if lease is None else (lease, owner, on_lost)

    # -- submitting ---------------------------------------------------------------------------

    async def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(write_connection, *args)`` in a write transaction; its result once committed."""
        op = Op(fn, args, trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
        if self.synchronous == "NORMAL":
            done = self._commit_now_if_alone(op)
            if done:
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
            if done is None:  # not tried (others could join its batch); False: gone to the thread
                self._enqueue_in_loop(op)
        else:
            self._queue.put(op)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if op.fn is sql.create_run:
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

    def write_behind(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue a write from the trio thread without waiting for it."""
        op = Op(fn, args, trio.lowlevel.current_trio_token(), None)
        if self.synchronous == "NORMAL" and self._writer is not None:
            self._enqueue_in_loop(op)
        else:
            self._queue.put(op)

    def submit_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a write from a plain thread (outside trio) and wait for its commit."""
        op = Op(fn, args, None, threading.Event())
        self._queue.put(op)
        op.waiter.wait()
        if op.error is not None:
            raise op.error
        return op.result

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
                batch: list[Op] = []
                handed = 0
                stop = False
                item = first
                while True:
                    if isinstance(item, list):  # a batch the loop handed over
                        batch.extend(item)
                        handed += 1
                    elif item is not _CHECKPOINT:
                        batch.append(item)
                    if len(batch) >= self.max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                with self._write_lock:
                    try:
                        self._commit(conn, batch, wait=True)
                    except Exception as exc:  # a ROLLBACK that failed, say: never end this thread
                        self._abandon(conn, batch, exc)
                self._after_commit()
                deliver(batch)
                if handed:
                    with self._behind_lock:
                        self._behind -= handed
                del batch, first, item  # nothing of a delivered batch stays reachable while idle
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

    def _after_commit(self) -> None:
        """Ask the writer thread for a checkpoint now and then (it fsyncs: keep it off the loop)."""
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.checkpoint_every:
            self._since_checkpoint = 0
            self._queue.put(_CHECKPOINT)

    # -- one transaction ----------------------------------------------------------------------

    def _begin(self, conn: sqlite3.Connection, *, wait: bool) -> None:
        """``BEGIN IMMEDIATE``: take the write lock now, so that nothing after can be busy.

        ``wait=False`` (the event loop) tries once and raises :class:`_Busy`; the writer
        thread retries, backing off from 1 to 50 ms, for up to ``busy_timeout`` seconds.
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if not wait:
                raise _Busy from None
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.05)

    def _commit(self, conn: sqlite3.Connection, batch: list[Op], *, wait: bool) -> None:
        """Commit ``batch`` in one transaction.

        Optimistic first: every write runs straight in the transaction. Should one raise,
        the transaction is rolled back and the batch is replayed with a savepoint per
        write, so that the failing write is undone alone and the others still commit.

        Raises:
            _Busy: ``wait=False`` and another connection holds the write lock (nothing ran).
        """
        started, commits = time.perf_counter(), self.commits
        if len(batch) == 1:  # a lone write needs no savepoint: its failure undoes all
            self._run_batch(conn, batch, savepoints=False, alone=True, wait=wait)
        elif not self._run_batch(conn, batch, savepoints=False, wait=wait):
            self._run_batch(conn, batch, savepoints=True, wait=wait)
        if self.commits != commits and self._report is not None:
            self._report(len(batch), time.perf_counter() - started)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[Op], *, savepoints: bool, wait: bool, alone: bool = False
    ) -> bool:
        try:
            self._begin(conn, wait=wait)
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
                failure: BaseException = self._map(exc) if isinstance(exc, sqlite3.Error) else exc
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back itself (SQLITE_FULL, an I/O
                    # error): the writes before this one are gone too.
                    for other in batch:
                        other.result, other.error = None, failure
                    return True
                if not savepoints:
                    conn.execute("ROLLBACK")
                    if alone:
                        op.error = failure
                        return True
                    return False
                op.error = failure
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

    def _abandon(self, conn: sqlite3.Connection, batch: list[Op], exc: Exception) -> None:
        """Fail every write of ``batch`` with ``exc`` and leave no transaction open."""
        error = self._map(exc) if isinstance(exc, sqlite3.Error) else exc
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        for op in batch:
            op.result, op.error = None, error

    @staticmethod
    def _insert_step_results(conn: sqlite3.Connection, batch: list[Op]) -> bool:
        """Insert the step results of the batch (writes of journal rows alone) with one
        statement, and mark those ops done; ``False`` if that failed (the caller retries
        the batch one write at a time). Step results of different runs do not depend on
        each other, nor on the other writes of a batch, so their order does not matter."""
        grouped = [op for op in batch if op.fn is sql.write and sql.only_entries(op.args[0])]
        if len(grouped) < 2:
            return True
        try:
            sql.insert_entry_writes(conn, [op.args[0] for op in grouped])
        except Exception:
            return False
        for op in grouped:
            op.result, op.error = _GROUPED, None
        return True

    def _fence_holds(self, conn: sqlite3.Connection, batch: list[Op]) -> bool:
        assert self._fence is not None
        lease, owner, on_lost = self._fence
        holder = sql.lease_holder(conn, lease)
        if holder == owner:
            return True
        conn.execute("ROLLBACK")
        error = LeaseLost(self.path, owner, holder)
        for op in batch:
            op.error = error
        if on_lost is not None:
            self._fence = (lease, owner, None)
            on_lost()
        return False

    def _map(self, exc: sqlite3.Error) -> WorkflowError:
        return store_error(self.path, exc)

    # -- group commit on the event loop (synchronous=NORMAL) -----------------------------------
    #
    # With NORMAL a WAL commit issues no fsync and costs ~20-60 us, less than the two thread
    # hops (~70 us) of handing it to the writer thread. So writes are grouped on the trio
    # thread instead: every write queued while runnable tasks run joins one batch, which a
    # system task commits when they are done, on the same connection (under the write lock
    # that the writer thread takes for writes from other threads). If another connection
    # holds SQLite's write lock, the batch goes to the thread instead of waiting here.
    #
    # Creates of new runs queue apart and join a batch at most admit_per_batch at a time,
    # after every write of the runs already started. Without that, a burst of 1,000 triggers
    # runs in lock-step: 1,000 first steps, then one commit, then 1,000 sleeps, ... so each
    # run waits for the whole burst at every step and its sleeps all end in the same
    # millisecond (W2 lateness p50 48 ms; with 8 per batch, 3 ms).

    def _enqueue_in_loop(self, op: Op) -> None:
        token = op.token
        if self._loop_token is not token:
            self._loop_token = token
            self._loop_ops = []
            self._loop_new = []
            self._loop_wakeup = None
            trio.lowlevel.spawn_system_task(self._loop_committer, name="tarry-sqlite-committer")
        if op.fn is sql.create_run:
            self._loop_new.append(op)
        else:
            self._loop_ops.append(op)
        if self._loop_wakeup is not None:
            self._loop_wakeup.set()
            self._loop_wakeup = None

    def _hand_off(self, batch: list[Op]) -> None:
        """Give ``batch`` to the writer thread, which waits for the lock off the loop."""
        with self._behind_lock:
            self._behind += 1
        self.handoffs += 1
        self._queue.put(batch)

    def _commit_in_loop(self, conn: sqlite3.Connection, batch: list[Op]) -> bool:
        """Commit ``batch`` on the loop if the write lock is free at once; else hand it to
        the thread (and keep handing off until the thread caught up, to keep the order).
        ``True`` when it committed (or failed) here."""
        if self._behind or not self._write_lock.acquire(blocking=False):
            self._hand_off(batch)
            return False
        try:
            self._commit(conn, batch, wait=False)
        except _Busy:
            self._hand_off(batch)
            return False
        except Exception as exc:
            self._abandon(conn, batch, exc)
        finally:
            self._write_lock.release()
        self._after_commit()
        return True

    def _commit_now_if_alone(self, op: Op) -> bool | None:
        """Commit ``op`` right here when no other task could add to its batch: a lone run
        then saves the two task switches of handing it to the committer.

        ``True``: committed (or failed) here; ``False``: handed to the writer thread (the
        caller parks until it commits); ``None``: not tried, for the loop's committer."""
        if self._loop_ops or self._loop_new or trio.lowlevel.current_statistics().tasks_runnable:
            return None
        conn = self._conn
        if conn is None:
            return None
        if self._behind or not self._write_lock.acquire(blocking=False):
            self._hand_off([op])
            return False
        try:
            self._commit(conn, [op], wait=False)
        except _Busy:
            self._hand_off([op])
            return False
        except Exception as exc:
            self._abandon(conn, [op], exc)
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
                        f"database {self.path!r} was closed before this write committed; nothing of "
                        "it was written (close the store after the runtime that uses it)",
                        path=self.path,
                    )
                    for op in batch:
                        op.error = error
                    wake_all(batch)
                    continue
                if self._commit_in_loop(conn, batch):
                    wake_all(batch)
                del batch  # an idle committer must not keep the last batch (and its runs) alive
        finally:
            if self._loop_token is token:
                self._loop_token = None
                for op in self._loop_ops + self._loop_new:  # the trio run is ending: hand leftovers to the thread
                    self._queue.put(op)
                self._loop_ops = []
                self._loop_new = []


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text
