"""The event loop never waits for the database: a write lock held by another connection
(another process, a Client, a ``sqlite3`` shell) stalls neither timers nor other tasks.

Real time on purpose: the lock is held by a real second connection for a real second,
and what is measured is how long the trio loop went without running a ticker task.
The bound asserted is loose (a tenth of the hold); ``python -m bench.stall`` prints the
figure itself.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio

from tarry import RunContext, SQLiteStore, create_runtime, workflow
from tarry.journal import RunRow

HOLD = 1.0


def hold_write_lock(path: Path, taken: threading.Event, seconds: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    taken.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def ticker(gaps: list[float], stop: trio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await trio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_a_write_lock_held_elsewhere_does_not_stall_the_loop(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "t.db"
    store = SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    await store.create_run(RunRow("r0", "wf", "running", "null", 1.0, 1.0))
    taken = threading.Event()
    gaps: list[float] = []
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker, gaps, stop)
        holder = threading.Thread(target=hold_write_lock, args=(path, taken, HOLD))
        holder.start()
        await trio.to_thread.run_sync(taken.wait)
        started = time.perf_counter()
        # Writes while the lock is held elsewhere: a lone one (committed in place when the
        # lock is free) and a group (the loop's committer), then one more behind them.
        async with trio.open_nursery() as writers:
            for k in range(1, 20):
                writers.start_soon(store.create_run, RunRow(f"r{k}", "wf", "running", "null", 1.0, 1.0))
        await store.create_run(RunRow("last", "wf", "running", "null", 1.0, 1.0))
        waited = time.perf_counter() - started
        stop.set()
    await trio.to_thread.run_sync(holder.join)
    # The writes waited for the lock (off the loop) and then committed, in order.
    assert waited >= HOLD * 0.8
    assert await store.get_run("last") is not None
    assert len(await store.list_runs(limit=None)) == 21
    if synchronous == "NORMAL":
        assert store.committer.handoffs >= 1
    # ... while the ticker kept ticking: no gap near the hold.
    assert max(gaps) < HOLD / 10, f"the loop stalled {max(gaps) * 1e3:.0f} ms"
    await store.close()


async def test_a_runtime_keeps_its_timers_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    log: list[int] = []

    @workflow("stepper")
    async def stepper(ctx: RunContext[int]) -> int:
        n = ctx.payload
        for k in range(n):
            await ctx.step(f"s{k}", log.append, k)
        return n

    runtime = create_runtime([stepper], SQLiteStore(path))
    taken = threading.Event()
    gaps: list[float] = []
    stop = trio.Event()
    async with runtime, trio.open_nursery() as nursery:
        nursery.start_soon(ticker, gaps, stop)
        holder = threading.Thread(target=hold_write_lock, args=(path, taken, HOLD))
        holder.start()
        await trio.to_thread.run_sync(taken.wait)
        result = await runtime.trigger("stepper", 5)
        stop.set()
    await trio.to_thread.run_sync(holder.join)
    assert result.status == "completed", result.error
    assert log == [0, 1, 2, 3, 4]
    assert max(gaps) < HOLD / 10, f"the loop stalled {max(gaps) * 1e3:.0f} ms"
