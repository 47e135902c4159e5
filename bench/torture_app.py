"""The workflows ``bench.torture`` kills workers under: ``tarry worker bench.torture_app``.

Every step's body appends one line to ``$TARRY_TORTURE_DIR/effects.log`` just before it
returns: ``<pid> <run_id> <step_id>``. That file is the record of side effects that really
happened, whatever the journal says; the harness compares the two. A line is one
``write`` under PIPE_BUF on an ``O_APPEND`` descriptor, so lines from two processes never
interleave.

What each workflow returns is a function of its payload (and of the signal sent to it),
so the harness can say how every run must end: see :func:`expected_steps`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from tarry import NonRetryableError, Retry, workflow

__all__ = ["WORKFLOWS", "expected_steps"]


def _dir() -> Path:
    return Path(os.environ.get("TARRY_TORTURE_DIR", "."))


def _append(name: str, line: str) -> None:
    fd = os.open(_dir() / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


async def work(run_id: str, step_id: str, before: float, after: float) -> str:
    """A step with a side effect; a kill can land before, during or after its commit."""
    await trio.sleep(before)
    _append("effects.log", f"{os.getpid()} {run_id} {step_id}\n")
    await trio.sleep(after)
    return step_id


async def flaky(run_id: str, step_id: str, failures: int) -> str:
    """Fails its first ``failures`` attempts (counted in a file, so across processes too)."""
    tally = _dir() / "attempts" / f"{run_id}.{step_id}"
    tally.parent.mkdir(exist_ok=True)
    done = len(tally.read_text().splitlines()) if tally.exists() else 0
    if done < failures:
        with tally.open("a") as f:
            f.write("failed\n")
        raise ConnectionError(f"attempt {done + 1} of {step_id} fails on purpose")
    _append("effects.log", f"{os.getpid()} {run_id} {step_id}\n")
    return "ok"


async def doomed(run_id: str) -> None:
    raise NonRetryableError(f"run {run_id}: this step never succeeds")


@workflow("t-chain")
async def chain(ctx: Any) -> Any:
    """``n`` steps with a durable sleep of ``nap`` seconds after the first."""
    p = ctx.payload
    done = []
    for i in range(p["n"]):
        done.append(await ctx.step(f"s{i}", work, ctx.run_id, f"s{i}", p["before"], p["after"]))
        if i == 0:
            await ctx.sleep("nap", p["nap"])
    return done


@workflow("t-approval")
async def approval(ctx: Any) -> Any:
    """Waits for ``approve`` with no timeout; the harness always sends it."""
    p = ctx.payload
    await ctx.step("draft", work, ctx.run_id, "draft", p["before"], p["after"])
    decision = await ctx.wait_for_event("review", "approve")
    await ctx.step("publish", work, ctx.run_id, "publish", p["before"], p["after"])
    return decision


@workflow("t-deadline")
async def deadline(ctx: Any) -> Any:
    """Waits ``timeout`` seconds for ``answer``, which may come late or never."""
    p = ctx.payload
    answer = await ctx.wait_for_event("answer", "answer", timeout=p["timeout"])
    await ctx.step("record", work, ctx.run_id, "record", p["before"], p["after"])
    return answer


@workflow("t-flaky")
async def retried(ctx: Any) -> Any:
    """A step that fails twice, then succeeds; the backoff is a durable sleep."""
    p = ctx.payload
    result = await ctx.step(
        "flaky",
        flaky,
        ctx.run_id,
        "flaky",
        p["failures"],
        retry=Retry(max_attempts=p["failures"] + 1, initial=0.2, backoff=2.0, retry_on=(ConnectionError,)),
    )
    await ctx.step("after", work, ctx.run_id, "after", p["before"], p["after"])
    return result


@workflow("t-doomed")
async def failing(ctx: Any) -> Any:
    """Fails for good at its second step."""
    p = ctx.payload
    await ctx.step("first", work, ctx.run_id, "first", p["before"], p["after"])
    await ctx.step("doomed", doomed, ctx.run_id)
    return "unreachable"


WORKFLOWS = [chain, approval, deadline, retried, failing]


def expected_steps(workflow_id: str, payload: dict[str, Any]) -> list[str]:
    """The step ids of a run's journal, in order, once it has ended as it should."""
    if workflow_id == "t-chain":
        ids = [f"s{i}" for i in range(payload["n"])]
        return [ids[0], "nap", *ids[1:]]  # n >= 1
    if workflow_id == "t-approval":
        return ["draft", "review", "publish"]
    if workflow_id == "t-deadline":
        return ["answer", "record"]
    if workflow_id == "t-flaky":
        return ["flaky", "after"]
    if workflow_id == "t-doomed":
        return ["first", "doomed"]
    raise KeyError(workflow_id)
