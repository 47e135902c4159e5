"""A run's lifecycle is right whether or not its actor is in memory, and whichever process
asks: one activation at a time, cancel reaching every descendant, a child's end reaching
its parent (engine/lifecycle.py, Store.transition)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from engine import ChildFailed, Client, SQLiteStore, Store, create_runtime, workflow
from tests.conftest import wait_for


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Transitions are applied by each store: all three."""
    return str(request.param)


@workflow("approval-leg")
async def leg(ctx: Any) -> Any:
    return await ctx.wait_for_event("ok", "approved")


@workflow("two-legs")
async def two_legs(ctx: Any) -> Any:
    """A fire-and-forget child and a waited-for one, both waiting for a person."""
    await ctx.start_child("background", leg, None)
    try:
        return await ctx.child("main", leg, None)
    except ChildFailed as exc:
        return {"child_failed": exc.error_type, "message": exc.error_message}


async def _status(runtime: Any, run_id: str) -> str:
    return str((await runtime.get_run(run_id)).status)


# -- cancel reaches every descendant, warm or not --------------------------------------------------


async def test_cancelling_a_passivated_parent_cancels_its_waiting_children(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[two_legs, leg], store=store, passivate_after=0.5)
    async with runtime:
        parent = await runtime.trigger(two_legs, None)
        assert parent.status == "suspended"
        await trio.sleep(5)  # every actor has let its run go
        assert not runtime._actors
        await runtime.cancel(parent.run_id, reason="order withdrawn")
        for child in ("background", "main"):
            assert await _status(runtime, f"{parent.run_id}:{child}") == "cancelled"
        assert await _status(runtime, parent.run_id) == "cancelled"


async def test_a_passive_runtime_cancels_the_whole_tree(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[two_legs, leg], store=store)
    parent = await runtime.trigger(two_legs, None)
    await runtime.cancel(parent.run_id)
    statuses = [await _status(runtime, f"{parent.run_id}{s}") for s in ("", ":background", ":main")]
    assert statuses == ["cancelled"] * 3


async def test_a_cancelled_waiting_child_raises_child_failed_in_its_parent(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[two_legs, leg], store=store, passivate_after=0.5)
    async with runtime:
        parent = await runtime.trigger(two_legs, None)
        await trio.sleep(5)
        await runtime.cancel(f"{parent.run_id}:main", reason="not needed")
        info = await wait_for(lambda: _ended(runtime, parent.run_id), "the parent to end")
    assert info.status == "completed"
    assert info.output == {"child_failed": "RunCancelled", "message": "not needed"}
    # The other child is untouched: only the cancelled one's outcome moved the parent.
    assert await _status(runtime, f"{parent.run_id}:background") == "suspended"


async def test_a_passive_runtime_drives_the_parent_of_a_cancelled_child(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[two_legs, leg], store=store)
    parent = await runtime.trigger(two_legs, None)
    await runtime.cancel(f"{parent.run_id}:main")
    info = await runtime.get_run(parent.run_id)
    assert info.status == "completed"
    assert info.output["child_failed"] == "RunCancelled"


async def _ended(runtime: Any, run_id: str) -> Any:
    info = await runtime.get_run(run_id)
    return info if info.status in ("completed", "failed", "cancelled") else None


# -- one activation at a time -------------------------------------------------------------------


async def test_overlapping_sweeps_and_signals_run_a_step_once(mock_clock: Any, store: Store) -> None:
    """A passive runtime whose sweeps overlap (a timer starts one while another, or a
    signal, is in flight) drives each run once: the step after the sleep runs once."""
    calls: list[str] = []

    def charge(run: str) -> str:
        calls.append(run)
        return "charged"

    @workflow("nap-then-charge")
    async def wf(ctx: Any) -> Any:
        await ctx.sleep("nap", 10)
        charged = await ctx.step("charge", charge, ctx.run_id)
        await ctx.wait_for_event("done", "done")
        return charged

    runtime = create_runtime(workflows=[wf], store=store)
    runs = [(await runtime.trigger(wf, None)).run_id for _ in range(5)]
    await trio.sleep(11)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(runtime.sweep)
        nursery.start_soon(runtime.sweep)
        for run_id in runs:
            nursery.start_soon(runtime.signal, run_id, "done")
        nursery.start_soon(runtime.sweep)
    await runtime.sweep()
    assert sorted(calls) == sorted(runs)
    for run_id in runs:
        assert await _status(runtime, run_id) == "completed"


# -- across processes ------------------------------------------------------------------------------


def _tarry(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.subprocess
@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_client_in_another_process_cancels_a_passivated_tree(db_path: Path, store: Store) -> None:
    runtime = create_runtime(workflows=[two_legs, leg], store=store)
    parent = await runtime.trigger(two_legs, None)
    await runtime.aclose()
    done = await trio.to_thread.run_sync(_tarry, db_path, "cancel", parent.run_id)
    assert done.returncode == 0, done.stderr
    with Client(db_path) as client:
        statuses = [client.get_run(f"{parent.run_id}{s}").status for s in ("", ":background", ":main")]
    assert statuses == ["cancelled"] * 3


@pytest.mark.subprocess
@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_child_cancelled_from_another_process_reaches_its_parent(db_path: Path, store: Store) -> None:
    runtime = create_runtime(workflows=[two_legs, leg], store=store)
    parent = await runtime.trigger(two_legs, None)
    await runtime.aclose()
    done = await trio.to_thread.run_sync(_tarry, db_path, "cancel", f"{parent.run_id}:main")
    assert done.returncode == 0, done.stderr
    again = create_runtime(workflows=[two_legs, leg], store=SQLiteStore(db_path))
    try:
        await again.sweep()
        info = await again.get_run(parent.run_id)
    finally:
        await again.aclose()
    assert info.status == "completed"
    assert info.output["child_failed"] == "RunCancelled"
