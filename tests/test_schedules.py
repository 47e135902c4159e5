"""Scheduled workflows: one run per tick, caught up once after downtime, across a killed process."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from tarry import Client, InvalidCron, SQLiteStore, create_runtime, workflow
from tarry.schedules import Schedule, tick_run_id

ROOT = Path(__file__).resolve().parent.parent


def test_a_bad_schedule_is_refused_when_the_workflow_is_defined() -> None:
    async def run(ctx: Any) -> None:
        return None

    with pytest.raises(InvalidCron):
        workflow("bad", schedule="61 * * * *")(run)
    with pytest.raises(InvalidCron, match="time zone"):
        workflow("bad", schedule="0 9 * * *", tz="Mars/Olympus")(run)


def test_ticks_follow_the_time_zone() -> None:
    schedule = Schedule("0 9 * * MON-FRI", "Europe/Berlin")
    friday = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    assert schedule.next_after(friday) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 CET
    assert schedule.latest_at_or_before(friday) == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    assert schedule.latest_at_or_before(datetime(2026, 12, 4, 8, 0, tzinfo=UTC)) == datetime(
        2026, 12, 4, 8, 0, tzinfo=UTC
    )
    assert tick_run_id("report", friday) == "report@2026-12-04T09:30:00Z"


async def test_a_serving_runtime_runs_each_tick_once(
    mock_clock: Any, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = time.time()
    monkeypatch.setattr(time, "time", lambda: base + mock_clock.current_time())
    seen: list[str] = []

    @workflow("every-10-min", schedule="*/10 * * * *", catch_up=3600)
    async def report(ctx: Any) -> Any:
        seen.append(ctx.payload["scheduled_at"])
        return ctx.payload

    first = create_runtime(workflows=[report], store=SQLiteStore(db_path))
    async with first:
        await trio.sleep(3600)  # six ticks (and the latest one before the start, caught up)
    await first.store.close()
    assert len(seen) == 7
    assert len(set(seen)) == 7
    await trio.sleep(1800)  # down for three ticks: only the latest is made up

    second = create_runtime(workflows=[report], store=SQLiteStore(db_path))
    async with second:
        await trio.sleep(1)
        runs = await second.list_runs(limit=None)
    await second.store.close()
    assert len(seen) == 8
    assert len(runs) == 8
    assert all(r.run_id == f"every-10-min@{r.output['scheduled_at']}" for r in runs)
    ticks = sorted(datetime.fromisoformat(s) for s in seen)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert gaps == [600.0] * 6 + [1800.0]


@pytest.mark.subprocess
def test_a_tick_runs_once_across_a_killed_worker(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    effects = tmp_path / "ticks.log"

    def start(log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", "tests.workflows_cli:every_minute"],
                cwd=ROOT,
                env={**os.environ, "TARRY_TEST_TICKS": str(effects)},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    for i in range(2):
        log = tmp_path / f"worker-{i}.log"
        proc = start(log)
        try:
            deadline = time.monotonic() + 20
            # Each start fires the latest tick (catch_up): a new run, or the one the last process made.
            while "schedule of every-minute fired" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            with Client(db) as client:
                while not all(r.status == "completed" for r in client.list_runs()):
                    assert time.monotonic() < deadline, "the tick's run did not complete"
                    time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    with Client(db) as client:  # the worker published the schedule for clients and the dashboard
        [published] = client.workflows()
        assert published.schedule == {"cron": "* * * * *", "tz": "UTC", "catch_up": 120}
    shown = subprocess.run(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), "workflows"], cwd=ROOT, capture_output=True, text=True
    )
    assert "* * * * * (UTC)" in shown.stdout
    lines = effects.read_text().split()
    assert lines
    assert len(lines) == len(set(lines))  # each tick's step ran once, whatever the restarts
    with Client(db) as client:
        assert sorted(r.run_id for r in client.list_runs()) == sorted(f"every-minute@{t}" for t in lines)
