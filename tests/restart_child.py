"""A process the restart tests start, kill and start again on the same database file.

    python -m tests.restart_child start DB DIR      trigger the runs, print READY, then hang
    python -m tests.restart_child resume DB DIR MODE  MODE "serve" or "sweep": finish every run

Every step appends its name to DIR/effects.log before returning: that file is the record of
side effects that happened, whatever the journal says.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import trio

from tarry import SQLiteStore, create_runtime, workflow

DIR = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")


def effect(name: str) -> None:
    with open(DIR / "effects.log", "a") as log:
        log.write(name + "\n")
        log.flush()
        os.fsync(log.fileno())


async def step_a() -> str:
    effect("A")
    return "a"


async def step_b() -> str:
    effect("B")
    return "b"


async def slow() -> str:
    effect("slow-start")
    if not (DIR / "fast").exists():
        await trio.sleep(3600)  # the first process is killed in here
    effect("slow-end")
    return "slow"


async def after() -> str:
    effect("after")
    return "after"


@workflow("sleeper")
async def sleeper(ctx: Any) -> Any:
    await ctx.step("A", step_a)
    await ctx.sleep("nap", 1)
    return await ctx.step("B", step_b)


@workflow("waiter")
async def waiter(ctx: Any) -> Any:
    decision = await ctx.wait_for_event("approval", "approve")
    await ctx.step("after", after)
    return decision


@workflow("midstep")
async def midstep(ctx: Any) -> Any:
    await ctx.step("A", step_a)
    return await ctx.step("slow", slow)


WORKFLOWS = [sleeper, waiter, midstep]


async def start(db: str) -> None:
    runtime = create_runtime(workflows=WORKFLOWS, store=SQLiteStore(db))
    async with runtime:
        await runtime.trigger(sleeper, None, run_id="sleeper")
        await runtime.trigger(waiter, None, run_id="waiter")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(runtime.trigger, midstep, None, run_id="midstep"))
            while "slow-start" not in (DIR / "effects.log").read_text():
                await trio.sleep(0.01)
            print("READY", flush=True)
            await trio.sleep_forever()


async def resume(db: str, mode: str) -> None:
    runtime = create_runtime(workflows=WORKFLOWS, store=SQLiteStore(db))
    ids = ["sleeper", "waiter", "midstep"]
    if mode == "serve":
        async with runtime:
            await runtime.signal("waiter", "approve", {"ok": True})
            while {(await runtime.get_run(i)).status for i in ids} != {"completed"}:
                await trio.sleep(0.02)
    else:
        await trio.sleep(1.0)  # let the sleeper's nap pass
        await runtime.sweep()
        await runtime.signal("waiter", "approve", {"ok": True})
    runs = {i: (await runtime.get_run(i)).to_dict() for i in ids}
    print(json.dumps(runs), flush=True)
    await runtime.aclose()


if __name__ == "__main__":
    command, db = sys.argv[1], sys.argv[2]
    if command == "start":
        trio.run(start, db)
    else:
        trio.run(resume, db, sys.argv[4])
