"""Faults of the machine, not of the workflow: a damaged, foreign, newer or read-only
database refused at start with one clear message; a full disk that fails commits with a
typed error while the worker stays up and goes on once space returns; a wall clock that
jumps while runs sleep."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import sqlite3
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
    DatabaseCorrupt,
    DatabaseReadOnly,
    DiskFull,
    NotATarryDatabase,
    SchemaTooNew,
    SQLiteStore,
    create_runtime,
    workflow,
)
from tarry.store.sqlite.schema import SCHEMA_VERSION
from tests import fault_app

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def tarry(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[None]:
    """``mount`` for the test (a tmpfs, a read-only bind), or a skip where this machine
    does not allow it (not root, or no mount namespace rights)."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip() or done.returncode}); needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


# -- refused at start -----------------------------------------------------------------------------


def a_tarry_database(path: Path, runs: int = 300) -> Path:
    with Client(path) as client:
        for i in range(runs):
            client.trigger("any", {"i": i, "pad": "x" * 400})
    return path


def damaged(path: Path) -> Path:
    """Its pages past the first few overwritten with noise, as a bad disk or a copy taken
    mid-write leaves them (the header is intact: SQLite opens it)."""
    a_tarry_database(path)
    size = path.stat().st_size
    noise = random.Random(14).randbytes(16 * 1024)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(noise)
    return path


def foreign(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.commit()
    conn.close()
    return path


def not_sqlite(path: Path) -> Path:
    path.write_text("these are my notes, not a database\n" * 200)
    return path


def newer(path: Path) -> Path:
    a_tarry_database(path, runs=1)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    return path


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("make", "error"),
    [(damaged, DatabaseCorrupt), (foreign, NotATarryDatabase), (not_sqlite, NotATarryDatabase), (newer, SchemaTooNew)],
)
def test_an_unusable_database_is_refused_at_start_with_one_line(tmp_path: Path, make: Any, error: type) -> None:
    db = make(tmp_path / "tarry.db")
    before = digest(db)
    with pytest.raises(error) as caught:
        Client(db)
    assert str(db) in caught.value.message
    for args in (["worker", "tests.fault_app:WORKFLOWS"], ["trigger", "filler"], ["runs"]):
        result = tarry(db, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"Error: {error.__name__}: "), result.stderr
    assert digest(db) == before  # refused, not repaired or migrated


def test_a_damaged_page_found_later_is_typed_too(tmp_path: Path) -> None:
    """quick_check at open cannot see damage done while the store is open: the read that
    meets it raises DatabaseCorrupt, not sqlite3's own error."""
    db = a_tarry_database(tmp_path / "tarry.db")
    with Client(db) as client:
        client.list_runs(limit=1)
        with open(db, "r+b") as f:  # after the open's check
            f.seek(db.stat().st_size // 2)
            f.write(b"\xff" * 16384)
        with pytest.raises(DatabaseCorrupt, match="damaged"):
            client.list_runs(limit=10_000, search="x")


@pytest.mark.subprocess
def test_a_read_only_database_is_refused_at_start(tmp_path: Path) -> None:
    source = a_tarry_database(tmp_path / "rw" / "tarry.db", runs=3).parent
    ro = tmp_path / "ro"
    with mounted(ro, "--bind", str(source)):
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=False).returncode:
            pytest.skip("cannot remount read-only here")
        with pytest.raises(DatabaseReadOnly, match="cannot be written"):
            Client(ro / "tarry.db")
        result = tarry(ro / "tarry.db", "worker", "tests.fault_app:WORKFLOWS")
        assert result.returncode == 2
        assert result.stderr.strip().startswith("Error: DatabaseReadOnly: "), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        with pytest.raises(DatabaseReadOnly, match="directory"):  # no file yet: cannot create one
            Client(ro / "new.db")


# -- a full disk -----------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_a_full_disk_fails_commits_typed_and_the_worker_goes_on_when_space_returns(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with mounted(disk, "-t", "tmpfs", "-o", "size=16m", "tmpfs"):
        db = disk / "tarry.db"
        runs = 24  # 24 runs x 8 steps x 16 KB = 3 MB of outputs, more than the ballast leaves
        with Client(db, workflows=fault_app.WORKFLOWS) as client:
            ids = [client.trigger(fault_app.filler, run_id=f"r{i:02}").run_id for i in range(runs)]
        ballast = disk / "ballast"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        ballast.write_bytes(b"\0" * (free - 1024 * 1024))  # leave 1 MB
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", "tests.fault_app:WORKFLOWS",
                 "--log-format", "json"],
                cwd=ROOT, env={**os.environ, "FAULT_DIR": str(tmp_path)}, stderr=log, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while "the disk is full" not in log_path.read_text() and time.monotonic() < deadline:
                assert worker.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.1)
            assert "the disk is full" in log_path.read_text(), "the disk never filled"
            time.sleep(1.0)  # some retries fail too
            assert worker.poll() is None, "the worker died of a full disk"
            with Client(db, workflows=fault_app.WORKFLOWS) as client:
                with pytest.raises(DiskFull):  # a client's write is refused the same way
                    client.trigger(fault_app.filler, {"pad": "x" * 2_000_000}, run_id="late")
                stuck = [client.get_run(run_id) for run_id in ids]
            assert any(info.status != "completed" for info in stuck)
            assert all(info.status in ("running", "completed") for info in stuck), [i.status for i in stuck]
            for info in stuck:  # nothing half-written: each run's journal is whole steps, in order
                assert [e.step_id for e in info.history] == [f"s{i}" for i in range(len(info.history))]
                assert all(e.status == "completed" for e in info.history)
            ballast.unlink()  # space returns
            with Client(db, workflows=fault_app.WORKFLOWS) as client:
                done = trio.run(
                    functools.partial(
                        wait_for,
                        lambda: all(client.get_run(r).status == "completed" for r in ids),
                        "every run to complete once space returned",
                        timeout=90,
                    )
                )
                assert done
                for run_id in ids:
                    assert client.get_run(run_id).output == fault_app.STEPS * fault_app.OUTPUT_BYTES
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        assert worker.returncode == 0, log_path.read_text()[-3000:]
        events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        assert any("the disk is full" in event.get("message", "") for event in events)
        effects = (tmp_path / "effects.log").read_text().splitlines()
        counts = {line: effects.count(line) for line in set(effects)}
        assert set(counts) == {f"{r} s{i}" for r in ids for i in range(fault_app.STEPS)}  # every step ran
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


# -- a wall clock that jumps -----------------------------------------------------------------------


class WallClock:
    """``time.time`` that follows trio's MockClock, plus a jump the test sets."""

    def __init__(self, clock: trio.testing.MockClock) -> None:
        self.clock = clock
        self.base = 1_800_000_000.0
        self.jump = 0.0

    def __call__(self) -> float:
        return self.base + self.jump + self.clock.current_time()


woke: list[float] = []


async def _mark() -> float:
    woke.append(trio.current_time())
    return trio.current_time()


@workflow("nap")
async def nap(ctx: Any) -> Any:
    await ctx.sleep("nap", 3600)
    return await ctx.step("after", _mark)


@pytest.mark.parametrize("jump", [-7200.0, 7200.0])
async def test_a_wall_clock_jump_while_serving_does_not_move_a_sleep(
    tmp_path: Path, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, jump: float
) -> None:
    """Scheduling runs on trio's monotonic clock: a jump of the system clock during an
    hour's sleep neither fires it early (forwards) nor holds it back (backwards)."""
    woke.clear()
    wall = WallClock(mock_clock)
    monkeypatch.setattr(time, "time", wall)
    store = SQLiteStore(tmp_path / "tarry.db")
    runtime = create_runtime(workflows=[nap], store=store)
    async with runtime:
        start = trio.current_time()
        result = await runtime.trigger(nap, None)
        assert result.status == "suspended"
        await trio.sleep(600)
        wall.jump = jump
        info = await wait_for(lambda: _ended(runtime, result.run_id), "the nap to end", timeout=3 * 3600)
    await store.close()
    assert len(woke) == 1, woke
    assert 3600 - 1 <= woke[0] - start <= 3600 + 1
    assert [(e.step_id, e.status) for e in info.history] == [("nap", "completed"), ("after", "completed")]


@pytest.mark.parametrize(("jump", "fires_after"), [(7200.0, 0.0), (-7200.0, 7200.0 + 3000.0)])
async def test_a_wall_clock_jump_across_a_restart_wakes_at_the_stored_wall_time(
    tmp_path: Path,
    mock_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    jump: float,
    fires_after: float,
) -> None:
    """The wake time is stored in wall time: a worker that starts after the clock jumped
    forwards finds the sleep overdue and ends it at once; after a jump backwards it waits
    until the wall clock reaches the stored time again. Either way it fires once."""
    woke.clear()
    wall = WallClock(mock_clock)
    monkeypatch.setattr(time, "time", wall)
    db = tmp_path / "tarry.db"
    store = SQLiteStore(db)
    async with create_runtime(workflows=[nap], store=store) as first:
        result = await first.trigger(nap, None)
        await trio.sleep(600)  # 600 s into the hour's sleep, the worker stops
    await store.close()
    wall.jump = jump
    store = SQLiteStore(db)
    runtime = create_runtime(workflows=[nap], store=store)
    async with runtime:
        restarted = trio.current_time()
        info = await wait_for(lambda: _ended(runtime, result.run_id), "the nap to end", timeout=5 * 3600)
    await store.close()
    assert len(woke) == 1, woke
    assert fires_after - 1 <= woke[0] - restarted <= fires_after + 1
    assert [(e.step_id, e.status) for e in info.history] == [("nap", "completed"), ("after", "completed")]


async def _ended(runtime: Any, run_id: str) -> Any:
    info = await runtime.get_run(run_id)
    return info if info.status in ("completed", "failed") else None
