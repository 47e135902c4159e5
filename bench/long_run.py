"""One run of many no-op steps, one after another: the engine issue's "1,000 steps" figure.

    python -m bench.long_run [--steps 1000] [--reps 5] [--synchronous NORMAL|FULL]

Not one of the WORKLOADS.md workloads (``python -m bench`` does not run it): it prints one
JSON line per repetition (``steps_per_s`` of the run, trigger to completion) and the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import tarry
from tarry import SQLiteStore, create_runtime, workflow


async def _noop(k: int) -> dict[str, int]:
    return {"i": k}


def _workflow(steps: int) -> Any:
    @workflow("long-run")
    async def long_run(ctx: Any) -> str:
        for k in range(steps):
            await ctx.step(f"s{k}", _noop, k)
        return "done"

    return long_run


async def _once(steps: int, synchronous: str, directory: Path) -> float:
    store = SQLiteStore(directory / "long.db", synchronous=synchronous)  # type: ignore[arg-type]
    wf = _workflow(steps)
    runtime = create_runtime(workflows=[wf], store=store)
    async with runtime:
        started = time.perf_counter()
        result = await runtime.trigger(wf, None)
        took = time.perf_counter() - started
    await store.close()
    if result.status != "completed":
        raise SystemExit(f"the run ended {result.status}")
    return steps / took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.long_run", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args(argv)
    figures = []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            figure = trio.run(_once, args.steps, args.synchronous, Path(tmp))
        figures.append(figure)
        line = {"engine": "tarry", "version": tarry.__version__, "store": "sqlite", "synchronous": args.synchronous}
        print(json.dumps({**line, "workload": "long_run", "n": args.steps, "steps_per_s": round(figure, 1)}))
    print(f"median steps/s: {statistics.median(figures):,.0f}", file=sys.stderr)


if __name__ == "__main__":
    main()
