"""Waiting for a run's end: Runtime.result, Client.result, AsyncClient (asyncio and trio),
and ``tarry wait``."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from tarry import (
    AsyncClient,
    Client,
    InvalidArgument,
    RunCancelled,
    RunFailed,
    RunNotFound,
    Store,
    WaitTimeout,
    WorkflowError,
    create_runtime,
    workflow,
)
from tarry.cli import cli

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.workflows_cli:runtime"


def explode(what: str) -> None:
    raise ValueError(f"no {what} today")


@workflow("nap")
async def nap(ctx: Any) -> Any:
    """Sleeps an hour (a suspension, not an end), then returns."""
    await ctx.sleep("nap", 3600)
    return {"slept": ctx.payload}


@workflow("ask")
async def ask(ctx: Any) -> Any:
    return await ctx.wait_for_event("answer", "answer")


@workflow("boom")
async def boom(ctx: Any) -> Any:
    await ctx.sleep("first", 60)
    await ctx.step("explode", explode, "coffee")


# -- Runtime.result ------------------------------------------------------------------------------


async def test_runtime_result_waits_past_suspensions_for_the_output(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime([nap], store=store)
    async with runtime:
        run = await runtime.trigger(nap, "zzz")
        assert run.status == "suspended"  # trigger returns at the first suspension; result does not
        assert await runtime.result(run.run_id) == {"slept": "zzz"}
        assert await runtime.result(run.run_id, timeout=0) == {"slept": "zzz"}  # ended: at once


async def test_runtime_result_raises_the_runs_failure(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime([boom], store=store)
    async with runtime:
        run = await runtime.trigger(boom)
        with pytest.raises(RunFailed) as caught:
            await runtime.result(run.run_id)
    failed = caught.value
    assert (failed.run_id, failed.workflow_id, failed.code) == (run.run_id, "boom", "run_failed")
    assert (failed.error.type, failed.error.message, failed.error.step_id) == (
        "ValueError",
        "no coffee today",
        "explode",
    )
    assert "ValueError" in failed.error.traceback
    assert failed.to_dict()["step_id"] == "explode"
    assert "explode" in str(failed)
    assert "no coffee today" in str(failed)


async def test_runtime_result_of_a_cancelled_run(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime([ask], store=store)
    async with runtime, trio.open_nursery() as nursery:
        run = await runtime.trigger(ask)
        caught: list[BaseException] = []

        async def wait() -> None:
            try:
                await runtime.result(run.run_id)
            except RunCancelled as exc:
                caught.append(exc)

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        await runtime.cancel(run.run_id, reason="nobody will answer")
    [cancelled] = caught
    assert isinstance(cancelled, RunCancelled)
    assert (cancelled.run_id, cancelled.reason) == (run.run_id, "nobody will answer")


async def test_runtime_result_times_out_and_the_run_goes_on(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime([ask], store=store)
    async with runtime:
        run = await runtime.trigger(ask)
        with pytest.raises(WaitTimeout) as caught:
            await runtime.result(run.run_id, timeout=30)
        assert isinstance(caught.value, TimeoutError)
        assert (caught.value.status, caught.value.until) == ("suspended", "end")
        assert "did not end within 30s" in str(caught.value)
        await runtime.signal(run.run_id, "answer", 42)
        assert await runtime.result(run.run_id, timeout=30) == 42


async def test_runtime_result_in_passive_mode_sees_another_tasks_signal(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime([ask], store=store)
    run = await runtime.trigger(ask)
    got: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def wait() -> None:
            got.append(await runtime.result(run.run_id))

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await runtime.signal(run.run_id, "answer", "yes")
    assert got == ["yes"]


async def test_runtime_result_bad_input(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime([ask], store=store)
    with pytest.raises(RunNotFound):
        await runtime.result("nope")
    with pytest.raises(InvalidArgument, match="timeout"):
        await runtime.result("nope", timeout=-1)
    with pytest.raises(InvalidArgument):
        await runtime.result("")


# -- Client.result across processes -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def served_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """A database a real ``tarry worker`` process serves (tests/workflows_cli.py)."""
    db: Path | str = tmp_path / "tarry.db"
    if request.param == "postgres":
        db = str(request.getfixturevalue("postgres_url"))
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", APP],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        with Client(db) as client:
            deadline = time.monotonic() + 15
            while not (client.engine_info().worker_pid == proc.pid and client.engine_info().worker_alive):
                assert time.monotonic() < deadline, "the worker did not start"
                assert proc.poll() is None, (tmp_path / "worker.log").read_text()
                time.sleep(0.02)
        yield db
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


@pytest.mark.subprocess
def test_client_result_across_processes(tmp_path: Path, served_db: Path | str) -> None:
    with Client(served_db) as client:
        # completed: result() waits past the run's suspension for its end.
        run = client.trigger("approval", {"title": "Q3"})
        assert client.wait(run.run_id, 10).status == "suspended"
        with pytest.raises(WaitTimeout) as timed_out:
            client.result(run.run_id, timeout=0.2)  # suspended is not ended
        assert (timed_out.value.status, timed_out.value.until) == ("suspended", "end")
        client.signal(run.run_id, "approve", {"approved": True, "by": "ana"})
        assert client.result(run.run_id, timeout=30) == {"published": True, "by": "ana"}
        assert client.wait(run.run_id, 0, until="end").status == "completed"

        # failed: the run's error, typed.
        missing = tmp_path / "missing"
        failing = client.trigger("flaky", {"path": str(missing)})
        with pytest.raises(RunFailed) as failed:
            client.result(failing.run_id, timeout=30)
        assert (failed.value.run_id, failed.value.error.type, failed.value.error.step_id) == (
            failing.run_id,
            "RuntimeError",
            "check",
        )
        assert str(missing) in failed.value.error.message

        # cancelled.
        asked = client.trigger("approval", {"title": "Q4"})
        client.wait(asked.run_id, 10)
        client.cancel(asked.run_id, reason="withdrawn")
        with pytest.raises(RunCancelled) as cancelled:
            client.result(asked.run_id, timeout=30)
        assert cancelled.value.reason == "withdrawn"

        with pytest.raises(RunNotFound):
            client.result("no-such-run", timeout=1)


def test_client_result_reads_the_run_only_when_something_was_committed(tmp_path: Path) -> None:
    with Client(tmp_path / "tarry.db") as client:
        run = client.trigger("anything", {})  # no worker: it stays running
        reads = 0
        settled = client.store.settled

        def counting(run_id: str) -> Any:
            nonlocal reads
            reads += 1
            return settled(run_id)

        client.store.settled = counting  # type: ignore[method-assign]
        with pytest.raises(WaitTimeout):
            client.result(run.run_id, timeout=0.3)
        # The first read, one when the watch thread first looked, one at the deadline: the
        # run is not polled while nothing is committed (every 5 ms would be ~60 reads).
        assert reads <= 3, reads


def test_client_wait_and_result_refuse_bad_arguments(tmp_path: Path) -> None:
    with Client(tmp_path / "tarry.db") as client:
        with pytest.raises(InvalidArgument, match="until"):
            client.wait("r", 1, until="forever")
        with pytest.raises(InvalidArgument, match="timeout"):
            client.result("r", timeout=float("nan"))
        with pytest.raises(RunNotFound):
            client.result("r", timeout=0)
        assert client.list_runs() == []


# -- AsyncClient: asyncio and trio ---------------------------------------------------------------------


@pytest.mark.subprocess
def test_async_client_under_asyncio(tmp_path: Path, served_db: Path | str) -> None:
    async def main() -> None:
        async with AsyncClient(served_db) as client:
            run = await client.trigger("approval", {"title": "async"})
            # Many awaited results hold no thread: 40 of them wait, and a read still goes
            # through asyncio's small default pool at once.
            waits = [asyncio.ensure_future(client.result(run.run_id, timeout=60)) for _ in range(40)]
            info = await asyncio.wait_for(client.get_run(run.run_id), 20)
            assert info.workflow_id == "approval"
            assert not any(w.done() for w in waits)
            assert await client.signal(run.run_id, "approve", {"approved": True, "by": "asyncio"})
            outputs = await asyncio.gather(*waits)
            assert outputs == [{"published": True, "by": "asyncio"}] * 40
            failing = await client.trigger("flaky", {"path": str(tmp_path / "missing")})
            with pytest.raises(RunFailed):
                await client.result(failing.run_id, timeout=30)
            asked = await client.trigger("approval", {"title": "late"})
            with pytest.raises(WaitTimeout):
                await client.result(asked.run_id, timeout=0.2)

    asyncio.run(main())


@pytest.mark.subprocess
async def test_async_client_under_trio(served_db: Path | str) -> None:
    async with AsyncClient(served_db) as client:
        run = await client.trigger("approval", {"title": "trio"})
        outputs: list[Any] = []
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(lambda: _append(outputs, client.result(run.run_id, timeout=60)))
            assert (await client.wait(run.run_id, 30)).status == "suspended"
            await client.signal(run.run_id, "approve", {"approved": True, "by": "trio"})
        assert outputs == [{"published": True, "by": "trio"}] * 3
        assert (await client.get_run(run.run_id)).status == "completed"
        with pytest.raises(RunNotFound):
            await client.result("no-such-run")


async def _append(into: list[Any], awaitable: Any) -> None:
    into.append(await awaitable)


def test_async_client_outside_an_event_loop_is_refused(tmp_path: Path) -> None:
    client = AsyncClient(tmp_path / "tarry.db")
    try:
        with pytest.raises(InvalidArgument, match="asyncio or trio"):
            client.get_run("r").send(None)
    finally:
        client.sync.close()


# -- tarry wait ---------------------------------------------------------------------------------------


def invoke(db: Path | str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--db", str(db), *args], prog_name="tarry")


@pytest.mark.subprocess
def test_tarry_wait_until_the_run_ends(tmp_path: Path, served_db: Path | str) -> None:
    with Client(served_db) as client:
        run = client.trigger("approval", {"title": "cli"})
        client.wait(run.run_id, 10)
        timed_out = invoke(served_db, "wait", run.run_id, "--timeout", "0.2")
        assert timed_out.exit_code == 3, timed_out.output
        assert timed_out.stderr.strip().splitlines()[-1].startswith("Error: WaitTimeout: ")
        client.signal(run.run_id, "approve", {"approved": True})
        done = invoke(served_db, "wait", run.run_id, "--timeout", "30", "--json")
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["output"] == {"published": True, "by": None}
        failing = client.trigger("flaky", {"path": str(tmp_path / "missing")})
        failed = invoke(served_db, "wait", failing.run_id)
        assert failed.exit_code == 1, failed.output
        assert "RuntimeError" in failed.stdout
        asked = client.trigger("approval", {"title": "gone"})
        # Cancelled once suspended: a cancel that lands just as a run suspends can stay
        # unapplied (an engine race outside this test's subject).
        client.wait(asked.run_id, 10)
        client.cancel(asked.run_id)
        assert invoke(served_db, "wait", asked.run_id, "--timeout", "30", "--json").exit_code == 1
    assert invoke(served_db, "wait", "no-such-run").exit_code == 2


def test_every_wait_error_is_a_workflow_error() -> None:
    assert issubclass(RunFailed, WorkflowError)
    assert issubclass(RunCancelled, WorkflowError)
    assert issubclass(WaitTimeout, TimeoutError)
