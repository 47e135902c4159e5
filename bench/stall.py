"""How long the event loop stalls while another connection holds the write lock.

    python -m bench.stall [--hold 1.5] [--reps 3] [--synchronous NORMAL|FULL]

Not one of the WORKLOADS.md workloads (``python -m bench`` does not run it). A second
connection (another process would do the same) holds SQLite's write lock for ``--hold``
seconds while a runtime drives a 50-step run and a ticker task sleeps 5 ms at a time; the
figure is the ticker's longest gap (``max_gap_ms``): what timers, signals and a dashboard
on the same loop would have waited. One JSON line per repetition, then the median.
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
from pathlib import Path
from typing import Any

import trio

import tarry
from tarry import SQLiteStore, create_runtime, workflow


def _hold(path: Path, taken: threading.Event, seconds: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    taken.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def _noop(k: int) -> int:
    return k


@workflow("stall")
async def _stall(ctx: Any) -> int:
    for k in range(50):
        await ctx.step(f"s{k}", _noop, k)
    return 50


async def _once(hold: float, synchronous: str, directory: Path) -> float:
    path = directory / "stall.db"
    runtime = create_runtime([_stall], SQLiteStore(path, synchronous=synchronous))  # type: ignore[arg-type]
    taken = threading.Event()
    worst = 0.0
    async with runtime, trio.open_nursery() as nursery:
        done = trio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.perf_counter()
            while not done.is_set():
                await trio.sleep(0.005)
                now = time.perf_counter()
                worst = max(worst, now - last - 0.005)
                last = now

        nursery.start_soon(ticker)
        holder = threading.Thread(target=_hold, args=(path, taken, hold))
        holder.start()
        await trio.to_thread.run_sync(taken.wait)
        result = await runtime.trigger(_stall, None)
        done.set()
    await trio.to_thread.run_sync(holder.join)
    if result.status != "completed":
        raise SystemExit(f"the run ended {result.status}: {result.error}")
    return worst * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stall", description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=1.5, help="seconds the other connection holds the lock")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args(argv)
    figures = []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            figure = trio.run(_once, args.hold, args.synchronous, Path(tmp))
        figures.append(figure)
        line = {"engine": "tarry", "version": tarry.__version__, "store": "sqlite", "synchronous": args.synchronous}
        print(json.dumps({**line, "workload": "stall", "hold_s": args.hold, "max_gap_ms": round(figure, 2)}))
    print(f"median longest stall: {statistics.median(figures):.1f} ms (lock held {args.hold:g} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
