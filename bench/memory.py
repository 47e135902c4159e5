"""W4 ``memory``: N runs (default 10,000) each suspended waiting for an event; resident
memory and database size per suspended run.

Under a serving runtime with default options: a warm-up run is triggered, signalled and
completed, then ``gc.collect()`` and the baseline RSS (VmRSS). Then N runs are triggered at
once; each suspends in ``wait_for_event``. A suspended run's actor stays warm (its coroutine
alive) for ``passivate_after`` seconds (default 5 s) before it is unwound, so the case waits
``passivate_after + 1.5`` s, checks that no actor is left, runs ``gc.collect()`` and reads
RSS again: the figure is for passivated runs, what a worker holds for runs waiting for
days. RSS is what the process holds, including memory the allocator keeps after the
warm actors are freed.

- ``rss_bytes_per_run``: (RSS after - baseline) / N.
- ``db_bytes_per_run``: (database file + WAL) / N, ``null`` with ``--store memory``.
- ``ok``: the store counts N suspended runs (plus the completed warm-up), each pending on
  the event, and no actor is left alive.
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

import trio

from tarry import SQLiteStore, create_runtime, workflow

from .common import db_bytes, make_store, poll, rss_bytes

DEFAULT_N = 10_000
MODES = ()
EVENT = "go"


@workflow("bench-memory")
async def wait_for_go(ctx: Any) -> Any:
    return await ctx.wait_for_event("wait", EVENT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passivate-after",
        type=float,
        help="the runtime's passivate_after (default: the runtime's own, 5 s); "
        "only to make the smoke test quick, not for figures",
    )


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    store = make_store(args)
    options = {} if args.passivate_after is None else {"passivate_after": args.passivate_after}
    runtime = create_runtime([wait_for_go], store, **options)
    async with runtime:
        warm = await runtime.trigger(wait_for_go)
        await runtime.signal(warm.run_id, EVENT, "warm-up")

        async def warm_done() -> bool:
            return (await runtime.get_run(warm.run_id)).status == "completed"

        await poll(warm_done, interval=0.005, timeout=10)
        gc.collect()
        baseline = rss_bytes()

        suspended = 0

        async def one() -> None:
            nonlocal suspended
            result = await runtime.trigger(wait_for_go)
            suspended += result.status == "suspended"

        async with trio.open_nursery() as nursery:
            for _ in range(args.n):
                nursery.start_soon(one)
        await trio.sleep(runtime.passivate_after + 1.5)
        # Private, read only to check the premise: every actor has passivated.
        live_actors = len(runtime._actors)
        gc.collect()
        rss = rss_bytes()
        counts = await store.count_by_status()
        pending = await runtime.list_runs(status="suspended", limit=None)
    await runtime.aclose()
    ok = (
        suspended == args.n
        and live_actors == 0
        and counts == {"completed": 1, "suspended": args.n}
        and all(r.pending is not None and r.pending.get("event") == EVENT for r in pending)
    )
    disk = db_bytes(store.path) / args.n if isinstance(store, SQLiteStore) else None
    return {
        "ok": ok,
        "rss_bytes_per_run": round((rss - baseline) / args.n, 1),
        "db_bytes_per_run": None if disk is None else round(disk, 1),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    return trio.run(_measure, args)
