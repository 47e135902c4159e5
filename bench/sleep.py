"""W2 ``sleep``: N runs of step, durable ``ctx.sleep`` of 1 s, step; all triggered at once
under a serving runtime (the timer wheel wakes them; no ``sweep()``), then waited for.

Each step records ``time.perf_counter()`` when its function runs. A run's lateness is
``after - before - 1 s``: it includes committing the first step and the sleep, the timer's
lateness, reactivating the run and starting the second step.

- ``start_all_s``: from the first trigger until every trigger has returned (each run has
  committed its first step and its sleep and is suspended).
- ``overhead_s``: the wall time from the first trigger until the store counts all N runs
  completed, minus 1 s. Completion is awaited by an event set by the last second step, then
  by polling ``count_by_status`` every 2 ms (a few polls: only the final commits remain).
- ``runs_per_s``: N / that wall time.
- ``ok``: every run completed with its output, both steps ran exactly once, no second step
  ran less than 1 s after its first.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import trio

from tarry import RunResult, create_runtime, workflow

from .common import make_store, percentile, poll

DEFAULT_N = 1000
MODES = ()
SLEEP_S = 1.0


class _Marks:
    def __init__(self, n: int) -> None:
        self.n = n
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.calls = 0
        self.all_after = trio.Event()


_marks: _Marks | None = None


async def mark(run_id: str, which: str) -> str:
    marks = _marks
    assert marks is not None
    marks.calls += 1
    if which == "before":
        marks.before[run_id] = time.perf_counter()
    else:
        marks.after[run_id] = time.perf_counter()
        if len(marks.after) == marks.n:
            marks.all_after.set()
    return which


@workflow("bench-sleep")
async def step_sleep_step(ctx: Any) -> str:
    await ctx.step("before", mark, ctx.run_id, "before")
    await ctx.sleep("nap", SLEEP_S)
    await ctx.step("after", mark, ctx.run_id, "after")
    return "done"


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    global _marks
    marks = _marks = _Marks(args.n)
    store = make_store(args)
    runtime = create_runtime([step_sleep_step], store)
    started: list[RunResult] = []

    async def one() -> None:
        started.append(await runtime.trigger(step_sleep_step))

    async with runtime:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(args.n):
                nursery.start_soon(one)
        start_all = time.perf_counter() - start

        async def all_completed() -> bool:
            return (await store.count_by_status()).get("completed", 0) == args.n

        with trio.move_on_after(60 + 10 * SLEEP_S):
            await marks.all_after.wait()
        await poll(all_completed, interval=0.002, timeout=10)
        wall = time.perf_counter() - start
    counts = await store.count_by_status()
    outputs = {r.output for r in await runtime.list_runs(limit=None)}
    await runtime.aclose()
    late_ms = [(marks.after[r] - marks.before[r] - SLEEP_S) * 1000 for r in marks.after if r in marks.before]
    ok = (
        all(r.status == "suspended" for r in started)
        and counts == {"completed": args.n}
        and outputs == {"done"}
        and marks.calls == 2 * args.n
        and len(late_ms) == args.n
        and min(late_ms) >= 0
    )
    return {
        "ok": ok,
        "overhead_s": round(wall - SLEEP_S, 4),
        "runs_per_s": round(args.n / wall, 1),
        "start_all_s": round(start_all, 4),
        "late_p50_ms": round(percentile(late_ms, 0.50), 3),
        "late_p99_ms": round(percentile(late_ms, 0.99), 3),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    return trio.run(_measure, args)
