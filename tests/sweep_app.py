"""Plain runtimes in several processes on one SQLite file, as cron jobs use them.

    python -m tests.sweep_app trigger DB DIR N   trigger N runs (each suspends in a short sleep)
    python -m tests.sweep_app sweep DB DIR S     sweep for S seconds, every 20 ms
    python -m tests.sweep_app signal DB DIR S    send every run its "done" signal, again and
                                                 again, for S seconds (a passive runtime's
                                                 signal() drives the run inline when it may)

Every step appends ``<run id> <step>`` to DIR/effects.log in one O_APPEND write before it
returns: that file is the record of side effects, whatever the journal says.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

from tarry import RunFinished, SQLiteStore, create_runtime, workflow


def effect(directory: Path, run_id: str, step: str) -> None:
    fd = os.open(directory / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{run_id} {step}\n".encode())
    finally:
        os.close(fd)


def charge(directory: str, run_id: str) -> str:
    time.sleep(0.03)  # a step that takes a while: two drivers would overlap in it
    effect(Path(directory), run_id, "charge")
    return "charged"


def ship(directory: str, run_id: str) -> str:
    effect(Path(directory), run_id, "ship")
    return "shipped"


@workflow("cron-order")
async def order(ctx: Any) -> Any:
    await ctx.sleep("settle", 0.2)
    await ctx.step("charge", charge, ctx.payload["dir"], ctx.run_id)
    await ctx.wait_for_event("done", "done")
    return await ctx.step("ship", ship, ctx.payload["dir"], ctx.run_id)


async def main(role: str, db: str, directory: str, amount: str) -> None:
    runtime = create_runtime(workflows=[order], store=SQLiteStore(db))
    try:
        if role == "trigger":
            for _ in range(int(amount)):
                await runtime.trigger(order, {"dir": directory})
            return
        until = time.monotonic() + float(amount)
        run_ids = [r.run_id for r in await runtime.list_runs(limit=None)]
        while time.monotonic() < until:
            if role == "sweep":
                await runtime.sweep()
            else:
                for run_id in run_ids:
                    with contextlib.suppress(RunFinished):
                        await runtime.signal(run_id, "done", None, dedup_key="done")
            await trio.sleep(0.02)
    finally:
        await runtime.aclose()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
