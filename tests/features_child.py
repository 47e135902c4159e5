"""A process test_durable_features_restart.py starts, SIGKILLs and starts again on one file.

    python -m tests.features_child start DB - DIR   trigger the runs, print READY once each
                                                   stands where the kill should find it, hang
    python -m tests.features_child resume DB - DIR  new code (patched), finish every run, print
                                                   their RunInfo as JSON

Every step appends a line to DIR/effects.log before it returns: the record of side effects
that happened, whatever the journal says.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import trio

from tarry import Retry, SQLiteStore, create_runtime, workflow

MODE = sys.argv[1] if len(sys.argv) > 1 else "start"
DIR = Path(sys.argv[4]) if len(sys.argv) > 4 else Path(".")
NEW_CODE = MODE == "resume"


def effect(line: str) -> None:
    with open(DIR / "effects.log", "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def effects() -> list[str]:
    path = DIR / "effects.log"
    return path.read_text().split("\n")[:-1] if path.exists() else []


async def flaky() -> str:
    effect("flaky")
    if effects().count("flaky") < 3:
        raise ConnectionError("not yet")
    return "third time"


async def record(name: str) -> str:
    effect(name)
    return name


async def blocked(name: str) -> str:
    effect(f"{name}-start")
    while not (DIR / "fast").exists():  # the first process is killed in here
        await trio.sleep(0.05)
    effect(f"{name}-end")
    return name


@workflow("retrying")
async def retrying(ctx: Any) -> Any:
    return await ctx.step("call", flaky, retry=Retry(max_attempts=5, initial=1.5, backoff=1))


@workflow("kid")
async def kid(ctx: Any) -> Any:
    await ctx.step("kid-work", record, "kid-work")
    go = await ctx.wait_for_event("go", "go")
    return {"kid": go}


@workflow("parent")
async def parent(ctx: Any) -> Any:
    got = await ctx.child("kid", kid, None)
    await ctx.step("after-kid", record, "after-kid")
    return got


@workflow("fanout")
async def fanout(ctx: Any) -> Any:
    return await ctx.gather(ctx.step("a", record, "a"), ctx.step("b", blocked, "b"))


@workflow("decide")
async def decide(ctx: Any) -> Any:
    return await ctx.wait_for_any("decision", ["approved", "rejected"])


@workflow("versioned")
async def versioned(ctx: Any) -> Any:
    await ctx.step("charge", record, "charge")
    if NEW_CODE and ctx.patched("insured-shipping"):
        shipped = await ctx.step("ship-insured", record, "ship-insured")
    else:
        shipped = await ctx.step("ship", record, "ship")
    await ctx.wait_for_event("delivered", "delivered")
    return shipped


@workflow("deadlined", deadline=1.0)
async def deadlined(ctx: Any) -> Any:
    await ctx.sleep("long", 3600)


@workflow("limited", max_concurrent=1)
async def limited(ctx: Any) -> Any:
    return await ctx.step("work", blocked, ctx.run_id)


WORKFLOWS = [retrying, kid, parent, fanout, decide, versioned, deadlined, limited]
IDS = ["retrying", "parent", "decide", "versioned", "deadlined", "fanout", "limited-1", "limited-2"]


async def start(db: str) -> None:
    runtime = create_runtime(workflows=WORKFLOWS, store=SQLiteStore(db))
    async with runtime, trio.open_nursery() as nursery:
        for run_id in IDS[:5]:
            await runtime.trigger(run_id, None, run_id=run_id)
        # These triggers return only when their runs first suspend or end; they block.
        nursery.start_soon(lambda: runtime.trigger("fanout", None, run_id="fanout"))
        await trio.sleep(0.2)
        nursery.start_soon(lambda: runtime.trigger("limited", None, run_id="limited-1"))
        await trio.sleep(0.2)
        await runtime.trigger("limited", None, run_id="limited-2")  # returns once it is in line
        while True:
            infos = {run_id: await runtime.get_run(run_id) for run_id in [*IDS, "parent:kid"]}
            if (
                infos["retrying"].pending is not None
                and infos["retrying"].pending["kind"] == "retry"
                and infos["parent:kid"].status == "suspended"
                and [h.status for h in infos["fanout"].history] == ["completed"]
                and "b-start" in effects()
                and infos["versioned"].status == "suspended"
                and "limited-1-start" in effects()
                and infos["limited-2"].pending is not None
            ):
                break
            await trio.sleep(0.02)
        print("READY", flush=True)
        await trio.sleep_forever()


async def resume(db: str) -> None:
    runtime = create_runtime(workflows=WORKFLOWS, store=SQLiteStore(db))
    ids = [*IDS, "parent:kid", "versioned-new"]
    async with runtime:
        await runtime.signal("parent:kid", "go", "now")
        await runtime.signal("versioned", "delivered")
        await runtime.trigger("versioned", None, run_id="versioned-new")
        await runtime.signal("versioned-new", "delivered")
        with trio.fail_after(30):
            while True:
                infos = {run_id: await runtime.get_run(run_id) for run_id in ids}
                if all(info.status in ("completed", "failed", "cancelled") for info in infos.values()):
                    break
                await trio.sleep(0.02)
    print(json.dumps({run_id: info.to_dict() for run_id, info in infos.items()}))


if __name__ == "__main__":
    trio.run(start if MODE == "start" else resume, sys.argv[2])
