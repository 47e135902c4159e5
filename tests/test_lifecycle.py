"""A run's lifecycle is right whether or not its actor is in memory, and whichever process
asks: one activation at a time, cancel reaching every descendant, a child's end reaching
its parent (engine/lifecycle.py, Store.transition)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tarry import (
    ChildFailed,
    Client,
    InvalidArgument,
    RunNotFound,
    RunStillActive,
    SQLiteStore,
    Store,
    create_runtime,
    workflow,
)


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
        info = await _until_ended(runtime, parent.run_id)
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


async def _until_ended(runtime: Any, run_id: str) -> Any:
    """Poll until the run ends, bounded in real time: under the mock clock, virtual time
    leaps ahead whenever every task waits for a store's thread, so a virtual bound can
    run out while the store is still busy on a loaded machine."""
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        info = await runtime.get_run(run_id)
        if info.status in ("completed", "failed", "cancelled"):
            return info
        await trio.sleep(0.01)
    raise AssertionError(f"run {run_id} did not end within 30 s")


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
        [sys.executable, "-m", "tarry.cli", "--db", str(db), *args],
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


def _app(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sweep_app", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.subprocess
@pytest.mark.slow
def test_two_cron_sweeps_and_a_signalling_process_drive_each_run_once(tmp_path: Path) -> None:
    """Two processes sweep one SQLite file "from cron" while a third signals every run: each
    run is driven by one of them at a time, so every step's side effect happens once."""
    db = tmp_path / "cron.db"
    runs = 12
    _, err = (trigger := _app("trigger", str(db), str(tmp_path), str(runs))).communicate(timeout=60)
    assert trigger.returncode == 0, err
    procs = [_app("sweep", str(db), str(tmp_path), "4"), _app("sweep", str(db), str(tmp_path), "4")]
    procs.append(_app("signal", str(db), str(tmp_path), "4"))
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    _, err = (final := _app("sweep", str(db), str(tmp_path), "1")).communicate(timeout=60)  # what is left due
    assert final.returncode == 0, err
    effects = (tmp_path / "effects.log").read_text().splitlines()
    with Client(db) as client:
        ended = {r.run_id: r.status for r in client.list_runs(limit=None)}
    assert sorted(ended.values()) == ["completed"] * runs
    assert sorted(effects) == sorted(f"{run_id} {step}" for run_id in ended for step in ("charge", "ship"))


# -- resume(run_id) and sweep(limit=) ---------------------------------------------------------------


async def test_resume_drives_one_due_run_and_leaves_the_rest(mock_clock: Any, store: Store) -> None:
    @workflow("nap")
    async def nap(ctx: Any) -> Any:
        await ctx.sleep("nap", ctx.payload)
        return ctx.payload

    runtime = create_runtime(workflows=[nap], store=store)
    due = await runtime.trigger(nap, 5)
    later = await runtime.trigger(nap, 500)
    await trio.sleep(6)
    assert (await runtime.resume(later.run_id)).status == "suspended"  # not due: left as it is
    resumed = await runtime.resume(due.run_id)
    assert (resumed.status, resumed.output) == ("completed", 5)
    assert await _status(runtime, later.run_id) == "suspended"
    assert (await runtime.resume(due.run_id)).status == "completed"  # ended: returned as it is
    with pytest.raises(RunNotFound):
        await runtime.resume("no-such-run")


async def test_resume_takes_a_waiting_runs_signal(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[leg], store=store)
    run = await runtime.trigger(leg, None)
    # Stored behind the runtime's back, as another process would.
    await store.add_signal(run.run_id, "approved", '"yes"', runtime.now())
    resumed = await runtime.resume(run.run_id)
    assert (resumed.status, resumed.output) == ("completed", "yes")


async def test_sweep_limit_resumes_at_most_that_many(mock_clock: Any, store: Store) -> None:
    @workflow("short-nap")
    async def nap(ctx: Any) -> Any:
        await ctx.sleep("nap", 1)
        return "up"

    runtime = create_runtime(workflows=[nap], store=store)
    for _ in range(5):
        await runtime.trigger(nap, None)
    await trio.sleep(2)
    assert len(await runtime.sweep(limit=2)) == 2
    assert len(await runtime.sweep(limit=10)) == 3
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(InvalidArgument) as caught:
            await runtime.sweep(limit=bad)
        assert caught.value.field == "limit"


# -- delete one ended run ----------------------------------------------------------------------------


async def test_delete_removes_an_ended_run_and_refuses_an_active_one(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[leg], store=store)
    done = await runtime.trigger(leg, None)
    await runtime.signal(done.run_id, "approved", "yes")
    waiting = await runtime.trigger(leg, None)
    with pytest.raises(RunStillActive) as caught:
        await runtime.delete(waiting.run_id)
    assert (caught.value.run_id, caught.value.status) == (waiting.run_id, "suspended")
    assert await _status(runtime, waiting.run_id) == "suspended"  # nothing deleted
    await runtime.delete(done.run_id, by="ops@example.com")
    with pytest.raises(RunNotFound):
        await runtime.get_run(done.run_id)
    # Its audit trail outlives it: who deleted it, and when.
    assert [(a.action, a.by) for a in await store.audit(done.run_id)] == [("delete", "ops@example.com")]
    assert [r.run_id for r in await runtime.list_runs()] == [waiting.run_id]
    with pytest.raises(RunNotFound):
        await runtime.delete(done.run_id)


@pytest.mark.subprocess
@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_tarry_delete_from_another_process(db_path: Path, store: Store) -> None:
    runtime = create_runtime(workflows=[leg], store=store)
    done = await runtime.trigger(leg, None)
    await runtime.signal(done.run_id, "approved", "yes")
    waiting = await runtime.trigger(leg, None)
    await runtime.aclose()
    refused = await trio.to_thread.run_sync(_tarry, db_path, "delete", waiting.run_id)
    assert refused.returncode == 1
    assert "cancel it" in refused.stderr
    assert "Traceback" not in refused.stderr
    deleted = await trio.to_thread.run_sync(_tarry, db_path, "delete", done.run_id, "--json", "--as", "ana")
    assert deleted.returncode == 0, deleted.stderr
    with Client(db_path) as client:
        assert [r.run_id for r in client.list_runs()] == [waiting.run_id]
        assert [(a.action, a.by) for a in client.audit_trail(done.run_id)] == [("delete", "ana")]
        client.cancel(waiting.run_id)
        client.delete(waiting.run_id)
        assert client.list_runs() == []


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_cancel_that_meets_a_run_as_it_suspends_is_not_lost(tmp_path: Path) -> None:
    """A Client's cancel that lands while the worker is suspending the run (it read the run
    running; the run then commits its wait) still ends the run: before, about one in ten
    stayed suspended with the request unread."""
    db = tmp_path / "race.db"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", "tests.workflows_cli:runtime"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Client(db, create=True) as client:
            give_up = time.monotonic() + 60
            while not client.engine_info().worker_alive and time.monotonic() < give_up:
                time.sleep(0.05)
            runs = []
            for i in range(40):
                run = client.trigger("approval", {"title": str(i)})
                time.sleep(0.002 * (i % 10))  # cancel at every moment of the run's first activation
                client.cancel(run.run_id)
                runs.append(run.run_id)
            give_up = time.monotonic() + 30
            while time.monotonic() < give_up:
                statuses = {client.get_run(r).status for r in runs}
                if statuses == {"cancelled"}:
                    break
                time.sleep(0.1)
            assert {r: client.get_run(r).status for r in runs if client.get_run(r).status != "cancelled"} == {}
    finally:
        worker.terminate()
        worker.wait(30)


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_passive_sweep_clears_the_change_rows_nobody_else_reads(
    mock_clock: Any, db_path: Path, store: Store
) -> None:
    """A passive runtime announces what it writes, for a worker that may serve the file;
    with none serving, its sweep, which covers what they announce, clears them."""
    runtime = create_runtime(workflows=[leg], store=store)
    runs = [(await runtime.trigger(leg, None)).run_id for _ in range(3)]
    for run_id in runs:
        await runtime.signal(run_id, "approved", "yes")
    with Client(db_path) as client:
        assert client.engine_info().pending_changes > 0
    await runtime.sweep()
    with Client(db_path) as client:
        assert client.engine_info().pending_changes == 0
        assert {client.get_run(r).status for r in runs} == {"completed"}
