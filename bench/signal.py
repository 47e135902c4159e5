"""W3 ``signal``: one run waits for an event; the latency from the ``signal()`` call until
the step after the wait has completed, its result committed.

The workflow is ``wait_for_event`` then one no-op step; right after ``ctx.step`` returns
(which it does only once the step's result is committed) the workflow code reads
``time.perf_counter()`` and sets a trio event. A sample is that time minus the time just
before ``signal()`` was called. It covers: committing the signal to the inbox, handing it
to the run's (warm) actor, committing the wait's resolution with the signal consumed,
running the step, committing its result. It does not include the run's final commit
(status ``completed``), which follows.

A new run for every sample (triggered and suspended before the clock starts), 1 warm-up
then N samples (default 200), one after another.

- ``same-process``: ``runtime.signal()`` in the process serving the run.
- ``cross-process``: ``engine.Client(path).signal()`` from another process, while this one
  serves (needs ``engine.Client`` and a store a second process can open: SQLite only).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import trio

from engine import create_runtime, workflow

from .client import require_client
from .common import Unavailable, make_store, percentile, poll

DEFAULT_N = 200
MODES = ("same-process", "cross-process")
EVENT = "go"
WARMUP = 1

_done: dict[str, trio.Event] = {}
_at: dict[str, float] = {}


async def noop() -> str:
    return "after"


@workflow("bench-signal")
async def wait_then_step(ctx: Any) -> Any:
    payload = await ctx.wait_for_event("wait", EVENT)
    await ctx.step("after", noop)
    _at[ctx.run_id] = time.perf_counter()
    _done[ctx.run_id].set()
    return payload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cross-process", dest="mode", action="store_const", const="cross-process", help="= --mode cross-process"
    )


async def _same_process(args: argparse.Namespace) -> dict[str, Any]:
    store = make_store(args)
    runtime = create_runtime([wait_then_step], store)
    samples: list[float] = []
    ok = True
    async with runtime:
        for i in range(WARMUP + args.n):
            run_id = f"signal-{i}"
            _done[run_id] = trio.Event()
            result = await runtime.trigger(wait_then_step, run_id=run_id)
            ok = ok and result.status == "suspended"
            start = time.perf_counter()
            await runtime.signal(run_id, EVENT, {"i": i})
            with trio.move_on_after(10):
                await _done[run_id].wait()
            if not _done[run_id].is_set():
                ok = False
                break
            if i >= WARMUP:
                samples.append((_at[run_id] - start) * 1000)

        async def all_completed() -> bool:
            return (await store.count_by_status()).get("completed", 0) == WARMUP + args.n

        await poll(all_completed, interval=0.005, timeout=10)  # each with its signal's payload
    counts = await store.count_by_status()
    runs = await runtime.list_runs(limit=None)
    await runtime.aclose()
    ok = (
        ok
        and len(samples) == args.n
        and counts == {"completed": WARMUP + args.n}
        and all(r.output == {"i": int(r.run_id.split("-")[1])} for r in runs)
    )
    return {
        "ok": ok,
        "p50_ms": round(percentile(samples, 0.50), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.mode == "cross-process":
        require_client()
        if args.store != "sqlite":
            raise Unavailable("cross-process needs a store another process can open (--store sqlite)")
        raise Unavailable("TODO: the cross-process measurement is written once engine.Client has landed")
    return trio.run(_same_process, args)
