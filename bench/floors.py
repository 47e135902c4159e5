"""What bounds W1 here: the figures docs/performance.md quotes for the targets
tarry misses.

    python -m bench.floors [--runs 3000] [--reps 5] [--synchronous NORMAL|FULL]

Not WORKLOADS.md cases (``python -m bench`` does not run them). Each floor is printed as one
JSON line per repetition, then medians:

- ``sql_seq``: one W1 run's SQL, one run after another, with plain ``sqlite3`` on a file
  made by :class:`tarry.SQLiteStore` (so the same schema, WAL, ``synchronous``): create
  the run, three step results, the outcome, five transactions, the statements the store
  issues, and a WAL checkpoint every 256 commits on another thread, as the store does. No
  trio, no actor, no codec: the most W1 ``seq`` could reach here.
- ``sql_conc``: the same statements batched as the group commit batches them in W1
  ``conc``: each transaction creates 8 new runs (the store's admission) and takes the next
  write of every run already started, the step results in one statement.
- ``trio_conc``: the shape of W1 ``conc`` in bare trio: N tasks each park once (the run's
  create), spawn a task that parks four times (three steps and the outcome), and wait for
  it; a committer task wakes every parked task once per round, as the group commit does.
  No SQL, no engine: what trio's task switching alone costs per run.
- ``engine_seq`` and ``engine_conc``: W1 through the engine itself (a serving runtime,
  ``trigger``, an actor and a context per run) on a store whose writes keep nothing and
  never wait: what the engine costs with durability free. No store can make W1 faster.
- ``engine_sql_seq``: W1 ``seq`` through the engine on a store that runs
  :class:`tarry.SQLiteStore`'s own statements in place on its write connection (its
  checkpoint thread included), without its queue, write lock or schedule points: the most
  ``seq`` could do on SQLite with a write path that cost nothing. Less than the sum of
  ``sql_seq`` and ``engine_seq`` allows: the engine's Python and SQLite's C take turns on
  one core and slow each other down. (With ``--synchronous FULL`` its fsyncs happen on
  the event loop, where the store would commit on its writer thread.)
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

import tarry
from tarry import MemoryStore, SQLiteStore, create_runtime
from tarry.journal import RunRow, Write, new_run_id
from tarry.store.sqlite import statements as sqlite_sql
from tarry.store.sqlite.statements import INSERT_ENTRIES, RUN_COLUMNS

from .steps import EXPECTED, three_steps, trigger_all

_INSERT_RUN = f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO NOTHING"
_FINISH = (
    "UPDATE runs SET updated_at = ?, status = ?, output = ?, error = ?, pending = ?, wake_at = ?, "
    "wait_event = ? WHERE run_id = ? AND status IN (?,?)"
)


def _run_row(run_id: str, now: float) -> tuple[Any, ...]:
    return (run_id, "bench-steps", "running", "null", now, now, *([None] * 6), 1)


def _entry_row(run_id: str, k: int, now: float) -> tuple[Any, ...]:
    return (run_id, k, f"s{k}", "step", "completed", now, now, f'{{"i":{k}}}', None, None, 1)


def _finish_row(run_id: str, now: float) -> tuple[Any, ...]:
    return (now, "completed", "[0,1,2]", None, None, None, None, run_id, "running", "suspended")


def _timed_sql(
    directory: Path, synchronous: str, statements: Callable[[sqlite3.Connection, Callable[[], None]], None]
) -> float:
    """Seconds ``statements(conn, committed)`` takes on a fresh store file, with a WAL
    checkpoint every 256 commits on a thread of its own (it fsyncs), as the store does;
    ``statements`` calls ``committed()`` after each COMMIT."""
    path = directory / "floor.db"
    store = SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    store.open_sync()
    store.close_sync()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    checkpoints = threading.Semaphore(0)
    commits = 0
    stopping = False

    def checkpointer() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        while checkpoints.acquire() and not stopping:
            other.execute("PRAGMA wal_checkpoint(PASSIVE)")
        other.close()

    def committed() -> None:
        nonlocal commits
        commits += 1
        if commits % 256 == 0:
            checkpoints.release()

    thread = threading.Thread(target=checkpointer)
    thread.start()
    try:
        started = time.perf_counter()
        statements(conn, committed)
        return time.perf_counter() - started
    finally:
        stopping = True
        checkpoints.release()
        thread.join()
        conn.close()


def sql_seq(runs: int, synchronous: str, directory: Path) -> float:
    """Steps per second of ``runs`` W1 runs' statements, one run after another: five
    transactions per run."""

    def statements(conn: sqlite3.Connection, committed: Callable[[], None]) -> None:
        for _ in range(runs):
            run_id = new_run_id()
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_INSERT_RUN, _run_row(run_id, now))
            conn.execute("COMMIT")
            committed()
            for k in range(3):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(INSERT_ENTRIES, [_entry_row(run_id, k, now)])
                conn.execute("COMMIT")
                committed()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_FINISH, _finish_row(run_id, now))
            conn.execute("COMMIT")
            committed()

    return 3 * runs / _timed_sql(directory, synchronous, statements)


def sql_conc(runs: int, synchronous: str, directory: Path, admit: int = 8) -> float:
    """Steps per second of ``runs`` W1 runs' statements as the group commit batches them
    in ``conc``: each transaction creates ``admit`` new runs (the store's admission) and
    takes the next write of every run already started (step results in one statement)."""

    def statements(conn: sqlite3.Connection, committed: Callable[[], None]) -> None:
        run_ids = [new_run_id() for _ in range(runs)]
        groups = [run_ids[i : i + admit] for i in range(0, runs, admit)]
        for r in range(len(groups) + 4):  # group g is created in batch g, finishes in g + 4
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            entries = [
                _entry_row(run_id, r - g - 1, now)
                for g in range(max(0, r - 3), min(r, len(groups)))
                for run_id in groups[g]
            ]
            if entries:
                conn.executemany(INSERT_ENTRIES, entries)
            for run_id in groups[r] if r < len(groups) else ():
                conn.execute(_INSERT_RUN, _run_row(run_id, now))
            for run_id in groups[r - 4] if 4 <= r < len(groups) + 4 else ():
                conn.execute(_FINISH, _finish_row(run_id, now))
            conn.execute("COMMIT")
            committed()

    return 3 * runs / _timed_sql(directory, synchronous, statements)


async def _trio_conc(runs: int) -> float:
    parked: list[Any] = []
    wakeup = trio.Event()

    async def park() -> None:
        parked.append(trio.lowlevel.current_task())
        wakeup.set()
        await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)

    async def committer() -> None:
        nonlocal parked, wakeup
        while True:
            if not parked:
                wakeup = trio.Event()
                await wakeup.wait()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()  # let every runnable task park first
            batch, parked = parked, []
            for task in batch:
                trio.lowlevel.reschedule(task)

    async def actor(done: trio.Event) -> None:
        for _ in range(4):  # three steps and the outcome
            await park()
        done.set()

    async def trigger(nursery: trio.Nursery) -> None:
        await park()  # the run's create
        done = trio.Event()
        nursery.start_soon(actor, done)
        await done.wait()

    async with trio.open_nursery() as system:
        system.start_soon(committer)
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(runs):
                nursery.start_soon(trigger, nursery)
        took = time.perf_counter() - started
        system.cancel_scope.cancel()
    return 3 * runs / took


class _FreeStore(MemoryStore):
    """Writes that keep nothing and never wait: durability at no cost (a measuring device)."""

    async def create_run(self, row: RunRow, journal: Any = None, audit: Any = None) -> tuple[RunRow, bool]:
        return row, True

    async def write(self, write: Write) -> bool:
        return True

    def write_behind(self, write: Write) -> None:
        pass


class _InPlaceStore(MemoryStore):
    """SQLiteStore's statements in place on its write connection: its write path at no
    cost (a measuring device; it leans on the store's internals on purpose)."""

    def __init__(self, store: SQLiteStore) -> None:
        super().__init__()
        self.store = store

    def _commit(self, fn: Callable[..., Any], arg: Any) -> Any:
        conn = self.store.committer._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, arg)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.store.committer._after_commit()  # a checkpoint now and then, on the store's thread
        return result

    async def create_run(self, row: RunRow, journal: Any = None, audit: Any = None) -> tuple[RunRow, bool]:
        return self._commit(lambda conn, r: sqlite_sql.create_run(conn, r, journal, audit), row)  # type: ignore[no-any-return]

    async def write(self, write: Write) -> bool:
        return self._commit(sqlite_sql.write, write)  # type: ignore[no-any-return]

    def write_behind(self, write: Write) -> None:
        self._commit(sqlite_sql.write, write)


async def _engine_sql_seq(runs: int, synchronous: str, directory: Path) -> float:
    """Steps per second of W1 ``seq`` through the engine on :class:`_InPlaceStore`."""
    store = SQLiteStore(directory / "floor.db", synchronous=synchronous)  # type: ignore[arg-type]
    # A write through the writer thread: once it is done, the thread has set up _conn.
    await trio.to_thread.run_sync(store.submit_sync, lambda conn: None)
    try:
        return await _w1_through_engine(runs, "seq", _InPlaceStore(store))
    finally:
        await store.close()


async def _w1_through_engine(runs: int, mode: str, store: MemoryStore | None = None) -> float:
    """Steps per second of W1 (``mode`` seq or conc) on a serving runtime over ``store``
    (default :class:`_FreeStore`); raises unless every run completed as W1's do."""
    runtime = create_runtime([three_steps], store if store is not None else _FreeStore())
    async with runtime:
        results, took = await trigger_all(runtime, runs, mode)
    if len(results) != runs or any(r.output != EXPECTED for r in results):
        raise RuntimeError("engine floor: a run did not complete as W1's do")
    return 3 * runs / took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floors", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args(argv)
    figures: dict[str, list[float]] = {
        "sql_seq": [],
        "sql_conc": [],
        "trio_conc": [],
        "engine_seq": [],
        "engine_conc": [],
        "engine_sql_seq": [],
    }
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            figures["sql_seq"].append(sql_seq(args.runs, args.synchronous, Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            figures["sql_conc"].append(sql_conc(args.runs, args.synchronous, Path(tmp)))
        figures["trio_conc"].append(trio.run(_trio_conc, args.runs))
        figures["engine_seq"].append(trio.run(_w1_through_engine, args.runs, "seq"))
        figures["engine_conc"].append(trio.run(_w1_through_engine, args.runs, "conc"))
        with tempfile.TemporaryDirectory() as tmp:
            figures["engine_sql_seq"].append(trio.run(_engine_sql_seq, args.runs, args.synchronous, Path(tmp)))
        for floor in figures:
            steps_per_s = figures[floor][-1]
            line = {
                "engine": "tarry",
                "version": tarry.__version__,
                "floor": floor,
                "synchronous": args.synchronous if "sql" in floor else None,
                "n": args.runs,
                "steps_per_s": round(steps_per_s, 1),
                "us_per_run": round(3e6 / steps_per_s, 1),
            }
            print(json.dumps(line), flush=True)
    for floor, values in figures.items():
        median = statistics.median(values)
        print(f"{floor}: median {median:,.0f} steps/s, {3e6 / median:,.1f} us per run", file=sys.stderr)


if __name__ == "__main__":
    main()
