"""The worker: Runtime.drain, the lease (standby, takeover, fence), and real worker processes
(kill -9 with 200 runs in flight, a standby taking over, the drain on SIGTERM)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tarry import (
    Client,
    InvalidArgument,
    LeaseLost,
    MemoryStore,
    SQLiteStore,
    Store,
    Worker,
    create_runtime,
    workflow,
)

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent

# -- Runtime.drain ---------------------------------------------------------------------------

effects: list[str] = []


async def timed(name: str, seconds: float) -> str:
    effects.append(f"{name}-start")
    await trio.sleep(seconds)
    effects.append(f"{name}-end")
    return name


def two_steps(seconds: float) -> Any:
    @workflow("two-steps")
    async def wf(ctx: Any) -> Any:
        await ctx.step("work", timed, "work", seconds)
        await ctx.step("after", timed, "after", 0)
        return "done"

    return wf


@pytest.fixture(autouse=True)
def _reset() -> None:
    effects.clear()


async def test_drain_lets_the_step_in_progress_commit_then_stops(mock_clock: Any, make_store: Any) -> None:
    wf = two_steps(5)
    runtime = create_runtime(workflows=[wf], store=make_store())
    async with runtime:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.trigger, wf, None)
            await wait_for(lambda: effects == ["work-start"], "the step to start")
            assert await runtime.drain(grace=10) is True
            assert runtime.draining
            nursery.cancel_scope.cancel()
        [run] = await runtime.list_runs()
        info = await runtime.get_run(run.run_id)
    assert info.status == "running"  # left for the next runtime, not failed or cancelled
    assert [(h.step_id, h.status) for h in info.history] == [("work", "completed")]
    assert effects == ["work-start", "work-end"]

    second = create_runtime(workflows=[wf], store=make_store())
    async with second:
        done = await wait_for(lambda: _status(second, run.run_id, "completed"), "the next runtime")
    assert done.output == "done"
    assert effects == ["work-start", "work-end", "after-start", "after-end"]  # "work" did not run again


async def test_drain_past_its_grace_leaves_the_step_for_replay(mock_clock: Any, make_store: Any) -> None:
    wf = two_steps(100)
    runtime = create_runtime(workflows=[wf], store=make_store())
    async with runtime, trio.open_nursery() as nursery:
        nursery.start_soon(runtime.trigger, wf, None)
        await wait_for(lambda: effects == ["work-start"], "the step to start")
        start = trio.current_time()
        assert await runtime.drain(grace=2) is False
        assert trio.current_time() - start == pytest.approx(2, abs=0.1)
        nursery.cancel_scope.cancel()  # the trigger waiting for the run; leaving cancels the actor
    [run] = await runtime.list_runs()
    assert run.status == "running"
    assert (await runtime.get_run(run.run_id)).history == []  # the cut step left nothing half-written

    second = create_runtime(workflows=[wf], store=make_store())
    async with second:
        await wait_for(lambda: _status(second, run.run_id, "completed"), "the replay", timeout=300)
    assert effects.count("work-start") == 2  # at-least-once: the interrupted step ran again
    assert effects.count("work-end") == 1


async def test_drain_lets_suspended_runs_go_and_starts_nothing_new(mock_clock: Any, store: Store) -> None:
    @workflow("sleeper")
    async def sleeper(ctx: Any) -> Any:
        await ctx.sleep("nap", 5)
        await ctx.step("after", timed, "after", 0)

    runtime = create_runtime(workflows=[sleeper], store=store, passivate_after=3600)
    async with runtime:
        run = await runtime.trigger(sleeper, None)
        assert run.run_id in runtime._actors  # warm
        assert await runtime.drain(grace=60) is True
        assert runtime._actors == {}
        await trio.sleep(10)  # the wake time passes while draining: nothing starts
        assert effects == []
        late = await runtime.trigger(sleeper, None)  # committed, left for the next runtime
        assert late.status == "running"
    assert effects == []
    assert {r.status for r in await runtime.list_runs()} == {"suspended", "running"}


async def test_drain_outside_serving_and_bad_grace(mock_clock: Any) -> None:
    runtime = create_runtime()
    assert await runtime.drain(1) is True
    with pytest.raises(InvalidArgument, match="grace"):
        await runtime.drain(float("nan"))
    with pytest.raises(InvalidArgument, match="SQLite"):
        Worker(runtime)  # a MemoryStore: nothing for other processes to share


async def _status(runtime: Any, run_id: str, status: str) -> Any:
    info = await runtime.get_run(run_id)
    return info if info.status == status else None


async def test_a_signal_that_arrives_while_its_run_is_being_loaded_is_not_lost(mock_clock: Any) -> None:
    class SlowLoads(MemoryStore):
        gate = trio.Event()

        async def load(self, run_id: str) -> Any:
            found = await super().load(run_id)  # the inbox as it is now: without the signal
            await self.gate.wait()
            return found

    @workflow("waits")
    async def waits(ctx: Any) -> Any:
        return await ctx.wait_for_event("w", "go")

    store = SlowLoads()
    runtime = create_runtime(workflows=[waits], store=store, passivate_after=0)
    async with runtime:
        run = await runtime.trigger(waits, None)
        await wait_for(lambda: run.run_id not in runtime._actors, "the actor to let the run go")
        runtime._activate(run.run_id)  # a wake-up starts loading the run ...
        await trio.sleep(1)
        await runtime.signal(run.run_id, "go", {"n": 1})  # ... and the signal lands during the load
        store.gate.set()
        done = await wait_for(lambda: _status(runtime, run.run_id, "completed"), "the run to take its signal")
    assert done.output == {"n": 1}


# -- the lease, in one process: two workers on one file ------------------------------------------


@workflow("hello")
async def hello(ctx: Any) -> Any:
    return await ctx.step("greet", timed, "greet", 0)


async def test_second_worker_stands_by_and_takes_over_when_the_first_stops(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    first = Worker(create_runtime([hello], SQLiteStore(db)), lease_ttl=1)
    second = Worker(create_runtime([hello], SQLiteStore(db)), lease_ttl=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        nursery.start_soon(second.run)
        await wait_for(lambda: second.state == "standby", "the second worker to stand by")
        await trio.sleep(1.5)  # longer than the ttl: the first one's heartbeat keeps the lease
        assert second.state == "standby"
        first.stop()
        await wait_for(lambda: second.state == "serving", "the takeover", timeout=5)
        assert first.state == "stopped"
        with Client(db) as client:
            assert client.engine_info().worker == second.owner
            run = await trio.to_thread.run_sync(client.trigger, "hello")
            done = await trio.to_thread.run_sync(client.wait, run.run_id, 5)
        assert done.output == "greet"
        second.stop()


async def test_a_worker_whose_lease_was_taken_stops_and_commits_nothing(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"

    @workflow("stepper")
    async def stepper(ctx: Any) -> Any:
        for i in range(1000):
            await ctx.step(f"s{i}", timed, f"s{i}", 0.01)

    worker = Worker(create_runtime([stepper], SQLiteStore(db)), lease_ttl=60)
    lost: list[LeaseLost] = []

    async def run_worker(task_status: Any) -> None:
        try:
            await worker.run(task_status=task_status)
        except LeaseLost as exc:
            lost.append(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(run_worker)
        with Client(db) as client:
            run = await trio.to_thread.run_sync(client.trigger, "stepper")
            await wait_for(lambda: len(effects) > 10, "a few steps")
            # Another process takes the lease over (as a standby would after an expiry).
            client.store.lease_acquire("worker", "intruder", time.time() + 3600, 60, {})
            started = len(effects)
            await wait_for(lambda: lost, "the worker to notice", timeout=5)
            await trio.sleep(0.3)
            info = await trio.to_thread.run_sync(client.get_run, run.run_id)
    assert lost[0].code == "lease_lost"
    assert worker.state == "stopped"
    assert len(effects) <= started + 2  # at most the step in flight; then nothing more ran
    committed = len(info.history)
    with Client(db) as client:
        assert len(client.get_run(run.run_id).history) == committed  # and nothing more committed


# -- real processes ----------------------------------------------------------------------------


def _worker(
    db: Path, *args: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", "tests.workflows_cli:runtime", *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def _serving(client: Client, pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.engine_info()
        if info.worker_alive and info.worker_pid == pid:
            return
        time.sleep(0.02)
    raise AssertionError(f"worker {pid} did not start serving within {timeout}s")


def _until(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _effects(path: Path) -> collections.Counter[tuple[str, str]]:
    if not path.exists():
        return collections.Counter()
    return collections.Counter(tuple(line.split(" ", 1)) for line in path.read_text().splitlines())  # type: ignore[misc]


@pytest.mark.subprocess
def test_kill_9_with_200_runs_in_flight_loses_nothing(tmp_path: Path, procs: list[Any]) -> None:
    db, effects_file = tmp_path / "tarry.db", tmp_path / "effects.log"
    env = {"TARRY_TEST_EFFECTS": str(effects_file)}
    first = _worker(db, "--lease-ttl", "1", env={**env, "TARRY_TEST_SLOW": "3600"}, log=tmp_path / "first.log")
    procs.append(first)
    with Client(db) as client:
        _serving(client, first.pid)
        kinds = ["sleep"] * 70 + ["wait"] * 70 + ["step"] * 60
        runs = {}
        for i, kind in enumerate(kinds):
            run = client.trigger("chaos", {"kind": kind, "seconds": 6}, run_id=f"{kind}-{i:03d}")
            runs[run.run_id] = kind

        def in_place() -> bool:
            seen = _effects(effects_file)
            return (
                client.count_by_status()["suspended"] == 140
                and sum(n for (_, name), n in seen.items() if name == "slow-start") == 60
            )

        _until(in_place, "every run to sleep, wait or be mid-step")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL

        # While no worker is up: every waiting run gets its signal, and one more run starts.
        for run_id, kind in runs.items():
            if kind == "wait":
                client.signal(run_id, "go", {"for": run_id})
        extra = client.trigger("chaos", {"kind": "step"}, run_id="late")
        runs[extra.run_id] = "step-late"

        second = _worker(db, "--lease-ttl", "1", env={**env, "TARRY_TEST_SLOW": "0"}, log=tmp_path / "second.log")
        procs.append(second)
        _until(lambda: client.count_by_status()["completed"] == len(runs), "every run to complete", timeout=40)
        for run_id, kind in runs.items():
            info = client.get_run(run_id)
            assert info.status == "completed", (run_id, info.error)
            if kind == "wait":
                assert info.output == {"kind": "wait", "got": {"for": run_id}}  # no signal lost
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0

    seen = _effects(effects_file)
    for run_id, kind in runs.items():
        assert seen[(run_id, "a")] == 1, run_id
        assert seen[(run_id, "b")] == 1, run_id
        if kind == "step":  # the kill cut this step: it ran again, once
            assert seen[(run_id, "slow-start")] == 2, run_id
            assert seen[(run_id, "slow-end")] == 1, run_id
        elif kind == "step-late":
            assert seen[(run_id, "slow-start")] == 1, run_id
        else:
            assert seen[(run_id, "slow-start")] == 0, run_id
    assert max(seen.values()) <= 2


@pytest.mark.subprocess
def test_standby_takes_over_within_seconds_of_a_kill_9(tmp_path: Path, procs: list[Any]) -> None:
    db = tmp_path / "tarry.db"
    first = _worker(db, "--lease-ttl", "1.5")
    procs.append(first)
    with Client(db) as client:
        _serving(client, first.pid)
        second = _worker(db, "--lease-ttl", "1.5", log=tmp_path / "second.log")
        procs.append(second)
        _until(lambda: "standing by" in (tmp_path / "second.log").read_text(), "the standby message", timeout=15)
        assert client.engine_info().worker_pid == first.pid
        first.kill()
        killed = time.monotonic()
        _serving(client, second.pid, timeout=10)
        took = time.monotonic() - killed
        assert took < 3 * 1.5, took  # the ttl plus one standby check (ttl / 4), with room for a busy machine
        run = client.trigger("approval", {"title": "after the takeover"})
        assert client.wait(run.run_id, 10).status == "suspended"
        client.signal(run.run_id, "approve", {"approved": True})
        assert client.wait(run.run_id, 10).output == {"published": True, "by": None}
    log = (tmp_path / "second.log").read_text()
    assert "took over" in log
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=15) == 0


@pytest.mark.subprocess
def test_sigterm_drains_steps_in_progress_within_the_grace(tmp_path: Path, procs: list[Any]) -> None:
    db, effects_file = tmp_path / "tarry.db", tmp_path / "effects.log"
    env = {"TARRY_TEST_EFFECTS": str(effects_file)}
    first = _worker(db, "--grace", "2", env=env, log=tmp_path / "first.log")
    procs.append(first)
    with Client(db) as client:
        _serving(client, first.pid)
        gate = tmp_path / "gate"
        quick = client.trigger("steps", {"seconds": 0, "gate": str(gate)}, run_id="quick")
        slow = client.trigger("steps", {"seconds": 60}, run_id="slow")
        _until(lambda: len(_effects(effects_file)) == 2, "both steps to start")
        first.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        _until(lambda: "SIGTERM: draining" in (tmp_path / "first.log").read_text(), "the drain to begin")
        gate.touch()  # the quick step finishes during the drain; the slow one would take a minute
        assert first.wait(timeout=15) == 128 + signal.SIGTERM  # it left a run mid-step
        took = time.monotonic() - stopped
        assert took < 10, took  # the 2 s grace, not the slow step's 60 s
        assert client.get_run(quick.run_id).status == "running"  # stopped between its steps
        assert [h.step_id for h in client.get_run(quick.run_id).history] == ["work"]
        assert client.get_run(slow.run_id).history == []
        assert client.engine_info().worker_alive is False  # the lease was released

        second = _worker(db, env={**env}, log=tmp_path / "second.log")
        procs.append(second)
        # The slow step runs again in full (60 s) under the second worker: only check it restarted.
        _until(lambda: client.get_run(quick.run_id).status == "completed", "the quick run to finish", timeout=20)
        _until(lambda: _effects(effects_file)[("slow", "work-start")] == 2, "the cut step to run again")
        second.send_signal(signal.SIGTERM)
        _until(lambda: "SIGTERM: draining" in (tmp_path / "second.log").read_text(), "the drain to begin")
        second.send_signal(signal.SIGTERM)  # a second signal: no more grace, stop now
        stopped = time.monotonic()
        assert second.wait(timeout=15) == 128 + signal.SIGTERM
        assert time.monotonic() - stopped < 3  # not the default 10 s grace
    seen = _effects(effects_file)
    assert seen[("quick", "work-start")] == 1  # committed before the drain ended: never again
    assert seen[("quick", "after")] == 1
    log = (tmp_path / "first.log").read_text()
    assert "SIGTERM: draining" in log
    assert "1 stopped between steps, 1 left mid-step (slow in 'work') for the next worker" in log
