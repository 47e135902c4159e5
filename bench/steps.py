"""W1 ``steps``: N runs of a workflow of 3 no-op async steps, each returning ``{"i": k}``.

Both modes use a serving runtime (``async with runtime:``), the configuration of a worker.
``trigger`` returns when a run first suspends or ends; these runs never suspend, so it
returns when the run has completed (its outcome committed).

- ``seq``: trigger one run, await it, then the next.
- ``conc``: N triggers started at once in a trio nursery, then all awaited.

``wall_s`` runs from the first trigger to the last one's return. ``ok``: every run returned
``completed`` with output ``[0, 1, 2]``, and the store counts N completed runs and nothing else.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import trio

from tarry import RunResult, Runtime, create_runtime, workflow

from .common import make_store

DEFAULT_N = 1000
MODES = ("seq", "conc")
STEPS = 3
EXPECTED = [0, 1, 2]


async def noop(k: int) -> dict[str, int]:
    return {"i": k}


@workflow("bench-steps")
async def three_steps(ctx: Any) -> list[int]:
    a = await ctx.step("s0", noop, 0)
    b = await ctx.step("s1", noop, 1)
    c = await ctx.step("s2", noop, 2)
    return [a["i"], b["i"], c["i"]]


async def trigger_all(runtime: Runtime, n: int, mode: str) -> tuple[list[RunResult], float]:
    """Trigger ``n`` runs of :func:`three_steps` on a serving ``runtime`` as ``mode`` says;
    their results and the seconds from the first trigger to the last one's return."""
    results: list[RunResult] = []

    async def one() -> None:
        results.append(await runtime.trigger(three_steps))

    start = time.perf_counter()
    if mode == "seq":
        for _ in range(n):
            await one()
    else:
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
    return results, time.perf_counter() - start


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    store = make_store(args)
    runtime = create_runtime([three_steps], store)
    async with runtime:
        results, wall = await trigger_all(runtime, args.n, args.mode)
    counts = await store.count_by_status()
    await runtime.aclose()
    ok = (
        len(results) == args.n
        and all(r.status == "completed" and r.output == EXPECTED for r in results)
        and counts == {"completed": args.n}
    )
    return {
        "ok": ok,
        "runs_per_s": round(args.n / wall, 1),
        "steps_per_s": round(STEPS * args.n / wall, 1),
        "wall_s": round(wall, 4),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    return trio.run(_measure, args)
