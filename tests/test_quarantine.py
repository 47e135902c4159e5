"""A poison run (its step kills every process that drives it) is quarantined after
``max_recoveries`` pick-ups instead of taking each new worker down; progress resets the
count. Real worker processes, SIGKILLed by the step itself (tests/poison_app.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tarry import Client, InvalidArgument, RunQuarantined, create_runtime
from tests.poison_app import healthy, poison, stumbling

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.subprocess


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the workers and the client meet: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "tarry.db")


def _start(db: str | Path, tmp: Path, started: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    with open(tmp / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tarry.cli",
                "--db",
                str(db),
                "worker",
                "tests.poison_app:WORKFLOWS",
                "--lease-ttl",
                "0.5",
                "--log-format",
                "json",
                *args,
            ],
            cwd=ROOT,
            env={**os.environ, "POISON_DIR": str(tmp)},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    started.append(proc)
    return proc


def _effects(tmp: Path) -> list[str]:
    path = tmp / "effects.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_poison_run_is_quarantined_and_the_worker_stays_up(
    database: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    db = database
    with Client(db, workflows=[poison, healthy]) as client:
        client.trigger(poison, run_id="bad")
        # The first worker runs 'prepare' and dies in 'explode'. The default max_recoveries
        # is 5: five more die there, each picking the run up at the same journal mark...
        for n in range(6):
            proc = _start(db, tmp_path, workers)
            assert proc.wait(timeout=30) == -signal.SIGKILL, f"worker {n + 1} should have died in the step"
            row = client.get_run("bad")
            assert row.status == "running"
        # ...and the next finds it left running there a sixth time: quarantined.
        survivor = _start(db, tmp_path, workers)
        done = client.wait("bad", timeout=30)
        assert done.status == "failed"
        info = client.get_run("bad")
        assert info.error is not None
        assert (info.error.type, info.error.code) == ("RunQuarantined", "run_quarantined")
        message = info.error.message
        assert "'bad'" in message
        assert "6 times" in message
        assert "after step 'prepare'" in message
        assert "retry" in message
        assert survivor.poll() is None, "the worker must stay up after quarantining"
        # The worker still serves other runs.
        client.trigger(healthy, run_id="fine")
        assert client.wait("fine", timeout=30).status == "completed"
        # Each death re-ran only the poison step: 'prepare' ran once.
        assert _effects(tmp_path).count("bad prepare") == 1
        # The fix is deployed; retry re-drives it with a fresh count and it completes.
        (tmp_path / "fixed").touch()
        client.retry("bad")
        done = client.wait("bad", timeout=30)
        assert done.status == "completed"
        assert done.output == "fixed"
        assert _effects(tmp_path).count("bad prepare") == 1
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0
    lines = [json.loads(x) for x in (tmp_path / "worker.log").read_text().splitlines() if x.startswith("{")]
    assert any("quarantined" in line.get("message", "") and line.get("run_id") == "bad" for line in lines)


def test_a_run_that_gets_further_on_every_recovery_is_not_quarantined(
    tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    db = tmp_path / "tarry.db"
    with Client(db, workflows=[stumbling]) as client:
        client.trigger(stumbling, run_id="slow")
        # Each of the 4 steps kills its first worker: 4 deaths, more than --max-recoveries 2,
        # and still no quarantine, because after the first each recovery starts one step
        # further on (the first two pick-ups are both at the start).
        for n in range(4):
            proc = _start(db, tmp_path, workers, "--max-recoveries", "2")
            assert proc.wait(timeout=30) == -signal.SIGKILL, f"worker {n + 1} should have died in a step"
        last = _start(db, tmp_path, workers, "--max-recoveries", "2")
        done = client.wait("slow", timeout=30)
        assert done.status == "completed"
        assert done.output == ["a", "b", "c", "d"]
        assert _effects(tmp_path) == ["slow a", "slow b", "slow c", "slow d"]
    last.send_signal(signal.SIGTERM)
    assert last.wait(timeout=30) == 0


def test_max_recoveries_is_checked() -> None:
    for bad in (0, -1, 1.5, True, "5"):
        with pytest.raises(InvalidArgument, match="max_recoveries"):
            create_runtime([], max_recoveries=bad)
    assert create_runtime([], max_recoveries=None).max_recoveries is None
    assert issubclass(RunQuarantined, Exception)
