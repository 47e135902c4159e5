"""asyncio steps (``tarry.asyncio_step``) in the three places a runtime runs: a real
``tarry worker`` process, ``async with runtime:`` under trio, and a runtime hosted by an
asyncio program (``tarry.hosted``); and an unmarked asyncio step's error."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

import tarry
from tarry import (
    AsyncioStepCancelled,
    Client,
    HostNotServing,
    InvalidArgument,
    NeedsAsyncio,
    NeedsTrio,
    NotATarryDatabase,
    Retry,
    RunNotFound,
    SQLiteStore,
    StepFailed,
    Worker,
    WorkflowNotFound,
    asyncio_step,
    create_runtime,
    workflow,
)

from . import asyncio_app
from .asyncio_app import WORKFLOWS, seen
from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _reset() -> None:
    seen.clear()


def runtime_on(path: Path, *extra: Any) -> tarry.Runtime:
    return create_runtime(workflows=[*WORKFLOWS, *extra], store=SQLiteStore(path))


def asyncio_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tarry-asyncio"]


async def status_of(runtime: tarry.Runtime, run_id: str, status: str) -> Any:
    info = await runtime.get_run(run_id)
    return info if info.status == status else None


# -- (b) under trio: the runtime's own asyncio loop, in a thread ----------------------------------


async def test_an_asyncio_step_runs_on_an_asyncio_loop_and_commits_its_result(tmp_path: Path) -> None:
    runtime = runtime_on(tmp_path / "t.db")
    async with runtime:
        result = await runtime.trigger("asyncio-fetch")
        assert result.status == "completed"
        assert result.output == {
            "first": {"fetched": True, "asyncio_task": True, "thread": "tarry-asyncio"},
            "second": {"fetched": True, "asyncio_task": True, "thread": "tarry-asyncio"},
        }
        [loop] = {loop for _, _, loop in seen}  # one loop per runtime, for every step
        assert loop is not None
        assert loop.is_running()
    assert asyncio_threads() == []  # leaving `async with runtime:` stopped it
    assert loop.is_closed()
    info = await runtime.get_run(result.run_id)
    assert [(h.step_id, h.status, h.output["thread"]) for h in info.history] == [
        ("fetch", "completed", "tarry-asyncio"),
        ("fetch-again", "completed", "tarry-asyncio"),
    ]
    await runtime.aclose()


async def test_asyncio_steps_run_concurrently_in_gather(tmp_path: Path) -> None:
    # Each waits for the other's asyncio event: done only if both run on the loop at once.
    events: dict[str, asyncio.Event] = {}

    @asyncio_step
    async def meet(me: str, other: str) -> str:
        events.setdefault(me, asyncio.Event()).set()
        await events.setdefault(other, asyncio.Event()).wait()
        return me

    @workflow("meet")
    async def both(ctx: Any) -> Any:
        return await ctx.gather(ctx.step("a", meet, "a", "b"), ctx.step("b", meet, "b", "a"))

    runtime = runtime_on(tmp_path / "t.db", both)
    result = await runtime.trigger(both)  # passive: the loop starts and stops with aclose()
    assert (result.status, result.output) == ("completed", ["a", "b"])
    assert len(asyncio_threads()) == 1
    await runtime.aclose()
    assert asyncio_threads() == []


async def test_an_unmarked_asyncio_step_fails_its_run_with_needs_asyncio(tmp_path: Path) -> None:
    runtime = runtime_on(tmp_path / "t.db")
    result = await runtime.trigger("asyncio-unmarked")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "NeedsAsyncio"
    assert "step 'fetch'" in result.error.message
    assert "@tarry.asyncio_step" in result.error.message
    assert "no running event loop" in result.error.message  # what asyncio said, named as such
    info = await runtime.get_run(result.run_id)
    [step] = info.history
    assert (step.status, step.attempts) == ("failed", 1)  # not retried despite Retry(3)
    await runtime.aclose()


async def test_needs_asyncio_fails_the_run_even_if_the_workflow_catches_the_step(tmp_path: Path) -> None:
    @workflow("catches")
    async def catches(ctx: Any) -> Any:
        try:
            await ctx.step("fetch", asyncio_app.fetch, ctx.run_id, 0)
        except StepFailed:
            return "fell back"
        return "fetched"

    runtime = runtime_on(tmp_path / "t.db", catches)
    result = await runtime.trigger(catches)
    assert (result.status, result.error and result.error.type) == ("failed", "NeedsAsyncio")
    await runtime.aclose()


def test_needs_asyncio_is_a_typed_error_with_a_code() -> None:
    error = NeedsAsyncio("r1", "fetch", "RuntimeError: no running event loop")
    assert isinstance(error, tarry.WorkflowCodeError)
    assert isinstance(error, tarry.NonRetryableError)
    assert error.to_dict()["code"] == "step_needs_asyncio"
    assert (error.run_id, error.step_id) == ("r1", "fetch")  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgument, match="asyncio_step takes a function"):
        asyncio_step(42)  # type: ignore[type-var]


async def test_cancelling_a_run_cancels_its_running_asyncio_step(tmp_path: Path) -> None:
    runtime = runtime_on(tmp_path / "t.db")
    async with runtime:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(runtime.trigger, "asyncio-hang", run_id="h1"))
            await wait_for(lambda: [w for r, w, _ in seen if r == "h1"] == ["hanging"], "the step to start")
            cancelled = await runtime.cancel("h1", reason="no longer needed")
        assert cancelled.status == "cancelled"
        # The asyncio task saw its cancellation before cancel() returned.
        assert [w for r, w, _ in seen if r == "h1"] == ["hanging", "cancelled"]
    await runtime.aclose()


async def test_a_timeout_cancels_the_asyncio_task_and_the_step_is_retried(tmp_path: Path) -> None:
    calls: list[int] = []

    @asyncio_step
    async def slow_then_fast() -> str:
        calls.append(1)
        if len(calls) == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                calls.append(-1)
                raise
        return "second attempt"

    @workflow("timeout")
    async def timed(ctx: Any) -> Any:
        return await ctx.step("slow", slow_then_fast, timeout=0.05, retry=Retry(max_attempts=2, initial=0))

    runtime = runtime_on(tmp_path / "t.db", timed)
    result = await runtime.trigger(timed)
    assert (result.status, result.output) == ("completed", "second attempt")
    assert calls == [1, -1, 1]  # the first attempt's task was cancelled when its time was up
    info = await runtime.get_run(result.run_id)
    [step] = info.history
    assert step.attempts == 2
    assert [f["type"] for f in step.detail["failures"]] == ["TimeoutError"]
    await runtime.aclose()


async def test_a_task_cancelled_on_the_asyncio_side_fails_the_attempt(tmp_path: Path) -> None:
    attempts: list[int] = []

    @asyncio_step
    async def cancelled_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
        return "ok"

    @workflow("cancelled-once")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("once", cancelled_once, retry=Retry(max_attempts=2, initial=0))

    runtime = runtime_on(tmp_path / "t.db", wf)
    result = await runtime.trigger(wf)
    assert (result.status, result.output) == ("completed", "ok")
    info = await runtime.get_run(result.run_id)
    assert [f["type"] for f in info.history[0].detail["failures"]] == ["AsyncioStepCancelled"]
    assert AsyncioStepCancelled.code == "asyncio_step_cancelled"
    await runtime.aclose()


def test_trio_run_inside_a_running_asyncio_loop_uses_its_own_loop(tmp_path: Path) -> None:
    # A notebook cell: trio.run called from code that a running asyncio loop executes. That
    # loop is blocked until trio.run returns, so the step must not be sent to it.
    runtime = runtime_on(tmp_path / "t.db")

    async def cell() -> Any:
        async def main() -> Any:
            try:
                return await runtime.trigger("asyncio-fetch")
            finally:
                await runtime.aclose()

        return trio.run(main)

    result = asyncio.run(cell())
    assert result.status == "completed"
    assert result.output["first"]["thread"] == "tarry-asyncio"


def test_the_cli_does_not_load_asyncio() -> None:
    # Every `tarry` command imports the engine; asyncio loads only when a step or host needs it.
    check = "import sys, tarry, tarry.cli; assert 'asyncio' not in sys.modules, 'asyncio was imported'"
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True)


# -- (c) hosted by an asyncio program -----------------------------------------------------------------


def test_hosted_under_asyncio_run_steps_share_the_host_loop(tmp_path: Path) -> None:
    runtime = runtime_on(tmp_path / "t.db")

    async def main() -> None:
        host_loop = asyncio.get_running_loop()
        async with tarry.hosted(runtime) as host:
            assert host.state == "serving"
            run = await host.trigger("asyncio-approval", run_id="a1")
            assert run.status == "suspended"
            assert await host.signal("a1", "decision", {"approved": True}) is True
            info = await _until_async(lambda: host.get_run("a1"), "completed")
            assert info.output == {
                "fetched": {"fetched": True, "asyncio_task": True, "thread": "MainThread"},
                "decision": {"approved": True},
            }
            assert [loop for _, _, loop in seen] == [host_loop]  # the app's own loop
            assert asyncio_threads() == []  # no second loop was started
            # Errors keep their type across the hop.
            with pytest.raises(WorkflowNotFound):
                await host.trigger("no-such-workflow")
            with pytest.raises(RunNotFound):
                await host.get_run("missing")
        assert host.state == "stopped"
        with pytest.raises(HostNotServing, match="stopped"):
            await host.get_run("a1")

    asyncio.run(main())
    with Client(tmp_path / "t.db") as client:  # committed, and the store was closed cleanly
        assert client.get_run("a1").status == "completed"


def test_hosted_an_unmarked_asyncio_step_fails_with_needs_asyncio(tmp_path: Path) -> None:
    runtime = runtime_on(tmp_path / "t.db")

    async def main() -> Any:
        async with tarry.hosted(runtime) as host:
            return await host.trigger("asyncio-unmarked")

    result = asyncio.run(main())
    assert result.status == "failed"
    assert result.error.type == "NeedsAsyncio"
    assert "@tarry.asyncio_step" in result.error.message


def test_hosted_cancellation_goes_both_ways(tmp_path: Path) -> None:
    runtime = runtime_on(tmp_path / "t.db")
    trio_side: list[str] = []

    async def sleeps_in_trio() -> None:
        try:
            await trio.sleep_forever()
        finally:
            trio_side.append("cancelled")

    async def main() -> None:
        async with tarry.hosted(runtime) as host:
            # trio -> asyncio: cancelling the run cancels its step's asyncio task.
            trigger = asyncio.ensure_future(host.trigger("asyncio-hang", run_id="h1"))
            await _until_sync(lambda: [w for r, w, _ in seen if r == "h1"] == ["hanging"])
            cancelled = await host.cancel("h1")
            assert cancelled.status == "cancelled"
            assert [w for r, w, _ in seen if r == "h1"] == ["hanging", "cancelled"]
            assert (await trigger).run_id == "h1"
            # asyncio -> trio: cancelling the awaiting asyncio task cancels the call in trio.
            call = asyncio.ensure_future(host.call(sleeps_in_trio))
            await asyncio.sleep(0.01)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await _until_sync(lambda: trio_side == ["cancelled"])

    asyncio.run(main())


def test_hosted_errors_keep_their_type_at_start(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all" * 100)

    async def main() -> None:
        with pytest.raises(NotATarryDatabase):
            async with tarry.hosted(Worker(runtime_on(foreign))):
                pass
        with pytest.raises(InvalidArgument, match="Runtime or a Worker"):
            tarry.hosted("runtime")  # type: ignore[arg-type]

    asyncio.run(main())
    with pytest.raises(InvalidArgument, match="running asyncio loop"):
        tarry.hosted(runtime_on(tmp_path / "t.db")).start()


def test_a_runtime_awaited_under_asyncio_says_to_host_it_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    runtime = runtime_on(db)

    async def enter() -> None:
        async with runtime:
            pass

    for attempt in (runtime.trigger("asyncio-fetch"), enter(), runtime.get_run("r1")):
        with pytest.raises(NeedsTrio, match=r"tarry\.hosted\(runtime\)"):
            asyncio.run(attempt)
    assert not db.exists()


def test_a_hosted_worker_serves_clients_of_its_database(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def main() -> None:
        async with tarry.hosted(Worker(runtime_on(db), wake_socket=False)) as host:
            with Client(db) as client:
                run = client.trigger("asyncio-approval", run_id="w1")  # another process's way in
                await _until_sync(lambda: client.get_run("w1").status == "suspended")
                client.signal("w1", "decision", {"approved": False})
            info = await _until_async(lambda: host.get_run("w1"), "completed")
            assert info.output["decision"] == {"approved": False}
            assert run.run_id == "w1"

    asyncio.run(main())


async def _until_async(read: Any, status: str) -> Any:
    for _ in range(3000):
        info = await read()
        if info.status == status:
            return info
        await asyncio.sleep(0.01)
    raise AssertionError(f"the run did not become {status}")


async def _until_sync(predicate: Any) -> None:
    for _ in range(3000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


# -- (a) a real `tarry worker` process ------------------------------------------------------------------


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    db, log = tmp_path / "t.db", tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", "tests.asyncio_app:runtime"],
            cwd=ROOT,
            env={**os.environ, "TARRY_TEST_EFFECTS": str(tmp_path / "effects.log")},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        with Client(db) as client:
            deadline = time.monotonic() + 15
            while not (client.engine_info().worker_pid == proc.pid and client.engine_info().worker_alive):
                assert time.monotonic() < deadline, "the worker did not start"
                assert proc.poll() is None, log.read_text()
                time.sleep(0.02)
        yield proc, db
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)


def _wait_status(client: Client, run_id: str, *statuses: str) -> Any:
    deadline = time.monotonic() + 30
    while (info := client.get_run(run_id)).status not in statuses:
        assert time.monotonic() < deadline, f"run {run_id} is still {info.status}"
        time.sleep(0.02)
    return info


@pytest.mark.subprocess
def test_a_tarry_worker_runs_asyncio_steps(tmp_path: Path, worker: Any) -> None:
    proc, db = worker
    effects = tmp_path / "effects.log"
    with Client(db) as client:
        client.trigger("asyncio-fetch", run_id="f1")
        info = _wait_status(client, "f1", "completed", "failed")
        assert info.output["first"] == {"fetched": True, "asyncio_task": True, "thread": "tarry-asyncio"}

        client.trigger("asyncio-unmarked", run_id="u1")
        info = _wait_status(client, "u1", "completed", "failed")
        assert info.status == "failed"
        assert info.error.type == "NeedsAsyncio"
        assert "@tarry.asyncio_step" in info.error.message

        client.trigger("asyncio-hang", run_id="h1")
        deadline = time.monotonic() + 30
        while "h1 hanging" not in (effects.read_text() if effects.exists() else ""):
            assert time.monotonic() < deadline, "the step did not start"
            time.sleep(0.02)
        client.cancel("h1")
        assert _wait_status(client, "h1", "cancelled").status == "cancelled"
        assert effects.read_text().splitlines()[-2:] == ["h1 hanging", "h1 cancelled"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0  # its asyncio loop's thread stopped with it
