"""tarry.testing: virtual time that stands still while real work is in flight."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tarry import InvalidArgument, InvalidDuration, RunContext, asyncio_step, workflow
from tarry.testing import StatusNotReached, TarryEnv, parse_duration, virtual_clock

TWO_DAYS = {"amount": 2, "unit": "days"}


def blocking(ms: int) -> int:
    """A def step: it blocks its worker thread for ``ms`` real milliseconds."""
    time.sleep(ms / 1000)
    return ms


@workflow("deadline-approval")
async def deadline_approval(ctx: RunContext[Any]) -> dict[str, Any]:
    await ctx.step("prepare", blocking, ctx.payload["ms"][0])
    decision = await ctx.wait_for_event("approval", "decision", timeout=TWO_DAYS)
    await ctx.step("after", blocking, ctx.payload["ms"][1])
    return {"approved": decision is not None and decision.get("approved", False)}


@asyncio_step
async def asyncio_work(ms: int) -> int:
    await asyncio.sleep(ms / 1000)  # real time, on the runtime's asyncio loop
    return ms


@workflow("asyncio-deadline")
async def asyncio_deadline(ctx: RunContext[Any]) -> str:
    await ctx.wait_for_event("w", "go", timeout={"amount": 1, "unit": "hours"})
    await ctx.step("work", asyncio_work, 40)
    return "done"


async def test_a_two_day_timeout_with_blocking_def_steps_holds_thirty_times_in_a_row(tarry_env: TarryEnv) -> None:
    """The plain autojump_clock fails some of these: it jumps while 'after' is in its thread,
    and the run is seen ``running`` after two days and a second."""
    rng = random.Random(22)
    tarry_env.register(deadline_approval)
    for _ in range(30):
        run_id = await tarry_env.trigger(deadline_approval, {"ms": [rng.randint(20, 50), rng.randint(20, 50)]})
        start = tarry_env.now()
        await tarry_env.advance({"amount": 2 * 86400 + 1, "unit": "seconds"})
        info = await tarry_env.get_run(run_id)
        assert (info.status, info.output) == ("completed", {"approved": False})
        assert tarry_env.now() - start == 2 * 86400 + 1
        assert await tarry_env.outline(run_id) == [
            ("step", "prepare", "completed"),
            ("event", "approval", "completed"),
            ("step", "after", "completed"),
        ]


async def test_time_stands_still_between_calls_so_a_signal_on_day_one_wins(tarry_env: TarryEnv) -> None:
    tarry_env.register(deadline_approval)
    run_id = await tarry_env.trigger(deadline_approval, {"ms": [30, 30]})
    await tarry_env.advance("1d")
    await trio.testing.wait_all_tasks_blocked(0.05)  # nobody moves time: the 2-day timeout stays ahead
    assert (await tarry_env.get_run(run_id)).status == "suspended"
    assert await tarry_env.signal(run_id, "decision", {"approved": True}, by="ana@example.com")
    assert await tarry_env.result(run_id) == {"approved": True}
    events = [entry for entry in await tarry_env.history(run_id) if entry.kind == "event"]
    assert events[0].output == {"approved": True}


async def test_an_asyncio_step_takes_no_virtual_time(tarry_env: TarryEnv) -> None:
    tarry_env.register(asyncio_deadline)
    run_id = await tarry_env.trigger(asyncio_deadline)
    info = await tarry_env.wait_for_status(run_id, "completed", within="2h")
    assert info.output == "done"
    started = next(entry for entry in info.history if entry.step_id == "work")
    assert started.finished_at is not None
    assert (started.finished_at - started.started_at).total_seconds() < 0.01  # virtual seconds


async def test_restart_on_a_sqlite_file_keeps_the_run_and_the_virtual_days(tarry_sqlite_env: TarryEnv) -> None:
    env = tarry_sqlite_env
    env.register(deadline_approval)
    run_id = await env.trigger(deadline_approval, {"ms": [20, 20]})
    await env.advance("1d")
    first = env.runtime
    await env.restart()
    assert env.runtime is not first
    await env.advance("23h59m")
    assert (await env.get_run(run_id)).status == "suspended"  # the day that passed still counts
    await env.advance("2m")
    assert (await env.get_run(run_id)).status == "completed"


async def test_waiting_for_a_run_that_only_a_signal_can_move_says_so(tarry_env: TarryEnv) -> None:
    @workflow("needs-signal")
    async def needs_signal(ctx: RunContext[Any]) -> Any:
        return await ctx.wait_for_event("w", "go")

    tarry_env.register(needs_signal)
    run_id = await tarry_env.trigger(needs_signal)
    with pytest.raises(StatusNotReached, match="nothing is scheduled") as caught:
        await tarry_env.wait_for_status(run_id, "completed")
    assert caught.value.status == "suspended"
    assert isinstance(caught.value, TimeoutError)


async def test_a_bad_duration_is_refused_and_time_does_not_move(tarry_env: TarryEnv) -> None:
    before = tarry_env.now()
    for bad in ("2 days", "2x", "", -1, float("nan"), True, [1]):
        with pytest.raises(InvalidDuration):
            await tarry_env.advance(bad)
    assert tarry_env.now() == before
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5


async def test_the_env_refuses_real_time() -> None:
    with pytest.raises(InvalidArgument, match="virtual_clock"):
        async with TarryEnv():
            pass


def test_outside_pytest_with_trio_run_and_a_sqlite_path(tmp_path: Path) -> None:
    async def main() -> Any:
        async with TarryEnv([deadline_approval], store=tmp_path / "t.db") as env:
            run_id = await env.trigger(deadline_approval, {"ms": [20, 20]})
            return await env.result(run_id, within="3d")

    assert trio.run(main, clock=virtual_clock()) == {"approved": False}
