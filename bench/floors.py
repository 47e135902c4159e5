"""What bounds W1 here, measured without the engine: the figures the README's Performance
section quotes for the targets tarry misses.

    python -m bench.floors [--runs 3000] [--reps 5] [--synchronous NORMAL|FULL]

Not WORKLOADS.md cases (``python -m bench`` does not run them). Two floors, each printed as
one JSON line per repetition, then medians:

- ``sql_seq``: one W1 run's SQL, one run after another, with plain ``sqlite3`` on a file
  made by :class:`engine.SQLiteStore` (so the same schema, WAL, ``synchronous``): create
  the run, three step results, the outcome, five transactions, the statements the store
  issues, and a WAL checkpoint every 250 commits left out of the time (the store runs it
  on another thread). No trio, no actor, no codec: the most W1 ``seq`` could reach here.
- ``trio_conc``: the shape of W1 ``conc`` in bare trio: N tasks each park once (the run's
  create), spawn a task that parks four times (three steps and the outcome), and wait for
  it; a committer task wakes every parked task once per round, as the group commit does.
  No SQL, no engine: what trio's task switching alone costs per run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import engine
from engine import SQLiteStore
from engine.journal import new_run_id
from engine.store.sqlite import ENTRY_COLUMNS, RUN_COLUMNS


def sql_seq(runs: int, synchronous: str, directory: Path) -> float:
    """Steps per second of ``runs`` W1 runs' statements, one run after another."""
    path = directory / "floor.db"
    store = SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    store.open_sync()
    store.close_sync()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # the store checkpoints on another thread
    insert_run = f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO NOTHING"
    insert_entry = f"INSERT OR REPLACE INTO entries ({ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    finish = (
        "UPDATE runs SET updated_at = ?, status = ?, output = ?, error = ?, pending = ?, wake_at = ?, "
        "wait_event = ? WHERE run_id = ? AND status IN (?,?)"
    )
    checkpointer = sqlite3.connect(path, isolation_level=None)
    took = 0.0
    started = time.perf_counter()
    for n in range(runs):
        if n % 50 == 0:  # as the store: a checkpoint every ~256 commits, off the writer's path
            took += time.perf_counter() - started
            checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            started = time.perf_counter()
        run_id = new_run_id()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(insert_run, (run_id, "bench-steps", "running", "null", now, now, *([None] * 6), 1))
        conn.execute("COMMIT")
        for k in range(3):
            conn.execute("BEGIN IMMEDIATE")
            row = (run_id, k, f"s{k}", "step", "completed", now, now, f'{{"i":{k}}}', None, None, 1)
            conn.executemany(insert_entry, [row])
            conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(finish, (now, "completed", "[0,1,2]", None, None, None, None, run_id, "running", "suspended"))
        conn.execute("COMMIT")
    took += time.perf_counter() - started
    conn.close()
    checkpointer.close()
    return 3 * runs / took


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floors", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args(argv)
    figures: dict[str, list[float]] = {"sql_seq": [], "trio_conc": []}
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            figures["sql_seq"].append(sql_seq(args.runs, args.synchronous, Path(tmp)))
        figures["trio_conc"].append(trio.run(_trio_conc, args.runs))
        for floor in figures:
            steps_per_s = figures[floor][-1]
            line = {
                "engine": "tarry",
                "version": engine.__version__,
                "floor": floor,
                "synchronous": args.synchronous if floor == "sql_seq" else None,
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
