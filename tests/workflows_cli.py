"""Workflows for the worker and CLI tests: ``tarry worker tests.workflows_cli:runtime``.

Side effects are appended to the file named by ``TARRY_TEST_EFFECTS`` (one line
``<run_id> <name>`` each), apart from the journal, so that tests can count how often a step's
body really ran. ``TARRY_TEST_SLOW`` is how long the ``slow`` step of ``chaos`` takes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pydantic
import trio

from tarry import create_runtime, workflow


def record(run_id: str, name: str) -> None:
    path = os.environ.get("TARRY_TEST_EFFECTS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{run_id} {name}\n".encode())  # one write under PIPE_BUF: atomic with O_APPEND
        finally:
            os.close(fd)


async def effect(run_id: str, name: str) -> str:
    record(run_id, name)
    return name


class Doc(pydantic.BaseModel):
    title: str
    pages: int = 1


@workflow("approval", payload=Doc, description="Draft a document, wait for a reviewer's approval, publish it.")
async def approval(ctx: Any) -> Any:
    await ctx.step("draft", effect, ctx.run_id, "draft")
    decision = await ctx.wait_for_event("review", "approve", timeout={"amount": 1, "unit": "days"})
    if not decision or not decision.get("approved"):
        return {"published": False}
    await ctx.step("publish", effect, ctx.run_id, "publish")
    return {"published": True, "by": decision.get("by")}


async def slow_effect(run_id: str, name: str) -> str:
    record(run_id, f"{name}-start")
    await trio.sleep(float(os.environ.get("TARRY_TEST_SLOW", "0")))
    record(run_id, f"{name}-end")
    return name


@workflow("chaos")
async def chaos(ctx: Any) -> Any:
    """Sleeps, waits or runs a long step between two quick ones (the kill -9 test)."""
    kind = ctx.payload["kind"]
    got = None
    await ctx.step("a", effect, ctx.run_id, "a")
    if kind == "sleep":
        await ctx.sleep("nap", ctx.payload["seconds"])
    elif kind == "wait":
        got = await ctx.wait_for_event("w", "go")
    else:
        await ctx.step("slow", slow_effect, ctx.run_id, "slow")
    await ctx.step("b", effect, ctx.run_id, "b")
    return {"kind": kind, "got": got}


async def timed(run_id: str, name: str, seconds: float, gate: str | None = None) -> str:
    record(run_id, f"{name}-start")
    while gate is not None and not await trio.Path(gate).exists():
        await trio.sleep(0.01)
    await trio.sleep(seconds)
    record(run_id, f"{name}-end")
    return name


@workflow("steps")
async def steps(ctx: Any) -> Any:
    """One step of ``payload["seconds"]`` (after the file ``payload["gate"]`` exists, if
    given), then a quick one (the drain test)."""
    await ctx.step("work", timed, ctx.run_id, "work", ctx.payload["seconds"], ctx.payload.get("gate"))
    await ctx.step("after", effect, ctx.run_id, "after")
    return "done"


@workflow("ping")
async def ping(ctx: Any) -> Any:
    """Waits for "go", then one step (latency measurements)."""
    got = await ctx.wait_for_event("w", "go")
    await ctx.step("after", effect, ctx.run_id, "after")
    return got


def positive(value: Any) -> int:
    if not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive int")
    return value


@workflow("checked", payload=positive)
async def checked(ctx: Any) -> Any:
    """A callable validator: no JSON Schema to publish, the worker validates."""
    return ctx.payload * 2


@workflow("flaky")
async def flaky(ctx: Any) -> Any:
    """Fails until the file named in the payload exists (retry tests)."""

    def check(path: str) -> str:  # sync: runs in a worker thread
        if not os.path.exists(path):
            raise RuntimeError(f"{path} is missing")
        return "ok"

    return await ctx.step("check", check, ctx.payload["path"])


def stamp(run_id: str, name: str, phase: str) -> None:
    """``<run_id> <name> <phase> <pid> <time>`` into ``TARRY_TEST_STAMPS``: who ran a step, when."""
    path = os.environ.get("TARRY_TEST_STAMPS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{run_id} {name} {phase} {os.getpid()} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)


async def stamped(run_id: str, name: str, seconds: float) -> str:
    stamp(run_id, name, "start")
    await trio.sleep(seconds)
    stamp(run_id, name, "end")
    return name


@workflow("mixed")
async def mixed(ctx: Any) -> Any:
    """A step, then a sleep, a wait for "go" (with a timeout) or nothing, then a step:
    the many-workers test, which checks from the stamps that no step ran twice at once."""
    kind = ctx.payload["kind"]
    got = None
    await ctx.step("a", stamped, ctx.run_id, "a", ctx.payload.get("step", 0.05))
    if kind == "sleep":
        await ctx.sleep("nap", ctx.payload["seconds"])
    elif kind == "wait":
        got = await ctx.wait_for_event("w", "go", timeout=ctx.payload.get("timeout", 120))
    await ctx.step("b", stamped, ctx.run_id, "b", ctx.payload.get("step", 0.05))
    return {"kind": kind, "got": got}


WORKFLOWS = [approval, chaos, steps, ping, checked, flaky, mixed]
runtime = create_runtime(WORKFLOWS)


@workflow("every-minute", schedule="* * * * *", catch_up=120)
async def every_minute(ctx: Any) -> Any:
    """Scheduled each minute: appends its tick to $TARRY_TEST_TICKS (tests/test_schedules.py)."""
    return await ctx.step("record", _record_tick, ctx.payload["scheduled_at"])


def _record_tick(tick: str) -> str:
    with open(os.environ["TARRY_TEST_TICKS"], "a") as log:
        log.write(tick + "\n")
    return tick
