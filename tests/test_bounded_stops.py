"""Stops that never wait for a blocked step: a cancel ends its run at once, and a worker
exits after its grace (at once on a second signal), leaving the step for the next worker."""

from __future__ import annotations

import collections
import logging
import os
import signal
import sqlite3
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

from tarry import Client, SQLiteStore, Store, create_runtime, workflow
from tarry.lease import Lease

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent

# -- in one process ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["def", "async def"])
async def test_cancel_of_a_blocked_step_ends_the_run_cancelled_at_once(
    mock_clock: Any, store: Store, kind: str
) -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def blocked() -> str:  # a real thread that nothing can interrupt
        started.set()
        release.wait(60)
        finished.set()
        return "late"

    async def blocked_async() -> str:
        started.set()
        await trio.sleep_forever()
        return "never"

    @workflow("blocked")
    async def wf(ctx: Any) -> Any:
        await ctx.step("charge", blocked if kind == "def" else blocked_async)
        return await ctx.step("after", blocked_async)

    runtime = create_runtime([wf], store=store)
    try:
        async with runtime, trio.open_nursery() as nursery:
            nursery.start_soon(partial(runtime.trigger, wf, None, run_id="r1"))
            await wait_for(started.is_set, "the step to start")
            before = trio.current_time()
            with trio.fail_after(30):  # virtual time: without abandoning the thread it jumps ahead
                result = await runtime.cancel("r1", reason="stop")
            assert trio.current_time() - before < 1
            assert result.status == "cancelled"
            release.set()
            if kind == "def":  # the abandoned thread returns later: nothing of it is journaled
                await trio.to_thread.run_sync(finished.wait, 10)
            await trio.sleep(1)
            info = await runtime.get_run("r1")
            assert info.status == "cancelled"
            assert info.cancel_reason == "stop"
            assert info.history == []
            nursery.cancel_scope.cancel()
    finally:
        release.set()


async def test_a_standby_reads_the_lease_and_takes_no_write_lock(
    mock_clock: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tarry.worker")
    db = tmp_path / "tarry.db"
    active, waiting = SQLiteStore(db), SQLiteStore(db, busy_timeout=30)
    assert active.lease_ttl == 2.5
    holder = Lease(active, owner="active")
    assert holder.interval == 1.0  # as often as the 4 s lease renewed at ttl / 4
    await holder.acquire({})
    standby = Lease(waiting, owner="standby")
    client = sqlite3.connect(db, isolation_level=None)
    client.execute("BEGIN IMMEDIATE")  # a client holds the write lock for a while
    try:
        async with trio.open_nursery() as nursery:
            taken: list[Any] = []

            async def stand_by() -> None:
                taken.append(await standby.acquire({}))

            nursery.start_soon(stand_by)
            await wait_for(lambda: "standing by" in caplog.text, "the standby to read the lease", timeout=10)
            await trio.sleep(5)  # polls, reading only: nothing waits for the lock
            client.execute("ROLLBACK")
            await holder.release()
            await wait_for(lambda: taken, "the standby to take the released lease")
        assert taken[0].owner == "active"
        assert standby.holder() == "standby"
    finally:
        client.close()
        await active.close()
        await waiting.close()


# -- real worker processes --------------------------------------------------------------------


def _worker(db: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", "tests.blocking_app:runtime", *args],
            cwd=ROOT,
            env={**os.environ, "TARRY_TEST_EFFECTS": str(db.parent / "effects.log")},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def _until(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _effects(db: Path) -> collections.Counter[str]:
    path = db.parent / "effects.log"
    return collections.Counter(path.read_text().splitlines() if path.exists() else [])


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _serving(client: Client, proc: subprocess.Popen[bytes]) -> None:
    _until(lambda: client.engine_info().worker_alive and client.engine_info().worker_pid == proc.pid, "a worker")


def _charging(client: Client, db: Path, run_id: str, gate: Path, seconds: float = 30) -> None:
    client.trigger("blocking", {"seconds": seconds, "gate": str(gate)}, run_id=run_id)
    _until(lambda: _effects(db)[f"{run_id} charge-start"] == 1, "the step to block its thread")


@pytest.mark.subprocess
def test_cancel_of_a_blocked_def_step_in_a_worker(tmp_path: Path, procs: list[Any]) -> None:
    db, gate = tmp_path / "tarry.db", tmp_path / "gate"
    worker = _worker(db, tmp_path / "worker.log")
    procs.append(worker)
    with Client(db) as client:
        _serving(client, worker)
        _charging(client, db, "r1", gate)
        client.cancel("r1", reason="customer changed their mind")
        started = time.monotonic()
        ended = client.wait("r1", 20)
        assert ended.status == "cancelled"
        assert time.monotonic() - started < 20  # not the step's 30 s (generous: a busy machine)
        assert _effects(db)["r1 charge-end"] == 0  # the thread still blocks

        gate.touch()  # the abandoned thread returns now
        _until(lambda: _effects(db)["r1 charge-end"] == 1, "the abandoned thread to finish")
        # A later run going through the same worker: whatever it would have done with the
        # late result, it has done by now.
        _charging(client, db, "r2", gate)
        assert client.wait("r2", 20).status == "completed"
        info = client.get_run("r1")
        assert info.status == "cancelled"
        assert info.history == []  # the late result was not journaled
        assert _effects(db)["r1 receipt"] == 0
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0  # nothing was left mid-step: a clean drain


@pytest.mark.subprocess
def test_sigterm_with_a_blocked_step_exits_after_the_grace_and_the_next_worker_resumes(
    tmp_path: Path, procs: list[Any]
) -> None:
    db, gate = tmp_path / "tarry.db", tmp_path / "gate"
    first = _worker(db, tmp_path / "first.log", "--grace", "1")
    procs.append(first)
    with Client(db) as client:
        _serving(client, first)
        _charging(client, db, "r1", gate)
        first.send_signal(signal.SIGTERM)
        # Generous: the 1 s grace, not the step's 30 s, and never the thread's.
        assert first.wait(timeout=25) == 128 + signal.SIGTERM
        log = (tmp_path / "first.log").read_text()
        assert "grace period over after 1.0s: 1 left mid-step (r1 in 'charge')" in log
        assert "for the next worker to resume" in log
        assert "cancelling" not in log
        info = client.get_run("r1")
        assert info.status == "running"  # not cancelled, not completed: left for the next worker
        assert info.history == []
        assert client.engine_info().worker_alive is False  # the lease was released

        gate.touch()
        second = _worker(db, tmp_path / "second.log")
        procs.append(second)
        _until(lambda: client.get_run("r1").status == "completed", "the next worker to finish the run")
        assert client.get_run("r1").output == "charged"
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0
    assert "drained in" in (tmp_path / "second.log").read_text()
    seen = _effects(db)
    assert seen["r1 charge-start"] == 2  # at-least-once: the interrupted step ran again
    assert seen["r1 charge-end"] == 1  # the first process's thread died with it
    assert seen["r1 receipt"] == 1


@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_exits_at_once(tmp_path: Path, procs: list[Any], signum: signal.Signals) -> None:
    db, gate = tmp_path / "tarry.db", tmp_path / "gate"
    worker = _worker(db, tmp_path / "worker.log", "--grace", "60")
    procs.append(worker)
    with Client(db) as client:
        _serving(client, worker)
        _charging(client, db, "r1", gate)
        worker.send_signal(signum)
        _until(lambda: "draining" in (tmp_path / "worker.log").read_text(), "the drain to begin")
        worker.send_signal(signum)
        # Generous: neither the 60 s grace nor the step's 30 s.
        assert worker.wait(timeout=25) == 128 + signum
        log = (tmp_path / "worker.log").read_text()
        assert "drain cut short" in log
        assert "1 left mid-step (r1 in 'charge')" in log
        assert client.get_run("r1").status == "running"
        assert client.engine_info().worker_alive is False
