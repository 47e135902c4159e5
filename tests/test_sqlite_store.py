"""What only SQLiteStore promises: the file, its schema, WAL, group commit, typed errors."""

from __future__ import annotations

import json
import sqlite3
import stat
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tarry import NotATarryDatabase, SchemaTooNew, SQLiteStore, create_runtime, workflow
from tarry.journal import RunRow
from tarry.store.sqlite import APPLICATION_ID, SCHEMA_VERSION


async def test_new_file_is_private_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.db"
    store = SQLiteStore(path)
    await store.open()
    await store.create_run(RunRow("r", "wf", "running", "null", 1.0, 1.0))
    try:
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()
        assert store.applied_migrations()[0] == "0001_initial"
    finally:
        await store.close()


async def test_reopening_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    first = SQLiteStore(path)
    await first.create_run(RunRow("r", "wf", "running", '{"a": 1}', 1.0, 1.0))
    await first.close()
    second = SQLiteStore(path)
    await second.open()
    await second.open()
    row = await second.get_run("r")
    assert row is not None
    assert json.loads(row.payload) == {"a": 1}
    assert len(second.applied_migrations()) == SCHEMA_VERSION
    await second.close()


async def test_a_file_of_an_older_schema_is_migrated_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tarry.store.sqlite import schema

    path = tmp_path / "old.db"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
    old = SQLiteStore(path)
    await old.open()
    await old.close()
    monkeypatch.undo()
    # A row as that version wrote it (today's statements name columns it does not have).
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO runs (run_id, workflow_id, status, payload, created_at, updated_at, wake_at, attempt) "
        "VALUES ('r', 'wf', 'suspended', 'null', 1.0, 1.0, 5.0, 1)"
    )
    conn.commit()
    conn.close()

    store = SQLiteStore(path)
    await store.open()
    try:
        assert store.applied_migrations()[2:] == [
            "0003_lean_indexes",
            "0004_child_runs",
            "0005_signal_dedup",
            "0006_forks",
            "0007_published_schedules",
            "0008_recoveries",
            "0009_audit_traces",
            "0010_run_tags",
        ]
        row = await store.get_run("r")
        assert row is not None
        assert row.parent_run_id is None
        assert row.traceparent is None
        assert await store.audit("r") == []
        assert row.tags is None  # runs created before tags existed carry none
        assert (row.recoveries, row.recovery_mark) == (0, None)
        assert await store.due_runs(until=10.0) == [("r", 5.0)]
        conn = sqlite3.connect(path)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "entries_step" not in indexes
        assert "runs_status_wake" not in indexes
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT run_id FROM runs WHERE status = 'suspended' AND wake_at <= 1 ORDER BY wake_at"
        ).fetchall()
        assert "runs_suspended_wake" in str(plan)
        conn.close()
    finally:
        await store.close()


async def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NotATarryDatabase, match="not a tarry database") as caught:
        await SQLiteStore(path).open()
    assert "users" in str(caught.value)
    assert path.read_bytes() == before


async def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a database at all" * 100)
    with pytest.raises(NotATarryDatabase):
        await SQLiteStore(path).open()


async def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew) as caught:
        await SQLiteStore(path).open()
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert "upgrade tarry" in str(caught.value)


def test_synchronous_must_be_normal_or_full(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "t.db", synchronous="OFF")  # type: ignore[arg-type]
    assert SQLiteStore(tmp_path / "t.db", synchronous="full").synchronous == "FULL"


async def _noop(k: int) -> dict[str, int]:
    return {"i": k}


@workflow("three-steps")
async def three(ctx: Any) -> str:
    for k in range(3):
        await ctx.step(f"s{k}", _noop, k)
    return "done"


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_concurrent_runs_share_commits(tmp_path: Path, synchronous: str) -> None:
    """Group commit: 100 concurrent runs make 500 writes in far fewer transactions."""
    store = SQLiteStore(tmp_path / "t.db", synchronous=synchronous)  # type: ignore[arg-type]
    runtime = create_runtime(workflows=[three], store=store)
    async with runtime, trio.open_nursery() as nursery:
        for _i in range(100):
            nursery.start_soon(runtime.trigger, three, None)
    runs = await runtime.list_runs(limit=None)
    assert len(runs) == 100
    assert {r.status for r in runs} == {"completed"}
    writes = 100 * 5  # create, three steps, completion
    assert store.commits < writes / 2, store.commits
    await store.close()


_committed_runs_seen: list[int] = []


async def _count_committed_runs(path: str) -> int:
    conn = sqlite3.connect(path)  # another connection: sees committed rows only
    try:
        seen = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        conn.close()
    _committed_runs_seen.append(seen)
    return seen


@workflow("count-runs")
async def count_runs(ctx: Any) -> int:
    return int(await ctx.step("count", _count_committed_runs, ctx.payload))


async def test_a_burst_of_triggers_is_admitted_a_few_runs_per_commit(tmp_path: Path) -> None:
    """Started runs go first: most runs run their step before the whole burst has been
    created, instead of every run of the burst being created before any step runs."""
    path = tmp_path / "t.db"
    store = SQLiteStore(path, admit_per_batch=2)
    runtime = create_runtime(workflows=[count_runs], store=store)
    _committed_runs_seen.clear()
    async with runtime, trio.open_nursery() as nursery:
        for _i in range(40):
            nursery.start_soon(runtime.trigger, count_runs, str(path))
    runs = await runtime.list_runs(limit=None)
    assert [r.status for r in runs] == ["completed"] * 40
    assert len(_committed_runs_seen) == 40
    # Without admission, every step but the first would see all 40 runs.
    before_the_burst_was_in = [n for n in _committed_runs_seen if n < 40]
    assert len(before_the_burst_was_in) >= 20, _committed_runs_seen
    await store.close()


def test_admit_per_batch_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="admit_per_batch"):
        SQLiteStore(tmp_path / "t.db", admit_per_batch=0)


@workflow("many-steps")
async def many_steps(ctx: Any) -> int:
    for k in range(ctx.payload):
        await ctx.step(f"s{k}", _noop, k)
    return int(ctx.payload)


async def test_a_run_alone_still_lets_timers_fire_while_it_commits(tmp_path: Path) -> None:
    """Lone commits skip most schedule points, not all: a task sleeping on a timer keeps
    being woken while one run commits step after step (real clock, on purpose)."""
    store = SQLiteStore(tmp_path / "t.db")
    runtime = create_runtime(workflows=[many_steps], store=store)
    ticks_during_run = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks_during_run
        while running:
            await trio.sleep(0.002)
            ticks_during_run += running

    async with runtime, trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0.01)
        start = trio.current_time()
        result = await runtime.trigger(many_steps, 1500)
        elapsed = trio.current_time() - start
        running = False
    assert result.output == 1500
    # A schedule point at least every millisecond: the 2 ms ticker runs about every 2 ms.
    assert ticks_during_run >= elapsed / 0.002 / 4, (ticks_during_run, elapsed)
    await store.close()


async def test_closing_the_store_during_a_burst_commits_what_was_queued(tmp_path: Path) -> None:
    """New runs wait in the committer's admission queue; close() commits them first
    instead of stopping the writer under them (which left their tasks waiting for ever)."""
    store = SQLiteStore(tmp_path / "t.db", admit_per_batch=2)
    await store.open()
    created: list[str] = []

    async def create(k: int) -> None:
        row, _ = await store.create_run(RunRow(f"r{k}", "wf", "running", "null", 1.0, 1.0))
        created.append(row.run_id)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for k in range(200):
                nursery.start_soon(create, k)
            while len(store.committer._loop_new) < 100:  # close while most creates still wait for admission
                await trio.lowlevel.checkpoint()
            await store.close()
    assert len(created) == 200
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 200
    conn.close()


@workflow("one-step")
async def one_step(ctx: Any) -> int:
    return int(await ctx.step("only", _noop, 1) is not None)


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_a_trigger_cancelled_during_a_burst_leaves_no_run_undriven(tmp_path: Path, synchronous: str) -> None:
    """Cancelling a trigger whose create waits in the admission queue: either nothing is
    created, or the run is created and driven to its end; no run stays 'running'."""
    store = SQLiteStore(tmp_path / "t.db", synchronous=synchronous, admit_per_batch=2)  # type: ignore[arg-type]
    runtime = create_runtime(workflows=[one_step], store=store)
    cancelled = 0

    async def impatient() -> None:
        nonlocal cancelled
        with trio.move_on_after(0) as scope:
            await runtime.trigger(one_step)
        cancelled += scope.cancelled_caught

    async def settled() -> bool:
        counts = await store.count_by_status()
        return counts.get("running", 0) == 0 and counts.get("completed", 0) >= 40

    async with runtime:
        async with trio.open_nursery() as nursery:
            for k in range(60):
                nursery.start_soon(impatient if k % 3 == 0 else partial(runtime.trigger, one_step))
        with trio.fail_after(10):
            while not await settled():
                await trio.sleep(0.01)
        await trio.sleep(0.05)  # a run left undriven would stay 'running' meanwhile
        counts = await store.count_by_status()
    assert cancelled > 0
    assert set(counts) == {"completed"}
    assert 40 <= counts["completed"] <= 60
    await store.close()


async def test_one_failing_write_in_a_batch_does_not_undo_the_others(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    await store.create_run(RunRow("done", "wf", "completed", "null", 1.0, 1.0))
    await store.create_run(RunRow("open", "wf", "suspended", "null", 1.0, 1.0))
    outcomes: dict[str, Any] = {}

    async def send(run_id: str) -> None:
        try:
            outcomes[run_id] = await store.add_signal(run_id, "go", "null", 2.0)
        except Exception as exc:
            outcomes[run_id] = exc

    async with trio.open_nursery() as nursery:
        for run_id in ["done", "open"] * 20:
            nursery.start_soon(send, run_id)
    assert type(outcomes["done"]).__name__ == "RunFinished"
    _, signals = await store.history("open")
    assert len(signals) == 20
    await store.close()


async def test_store_is_usable_from_plain_threads(tmp_path: Path) -> None:
    from tarry.store.sqlite import statements

    store = SQLiteStore(tmp_path / "t.db")

    def in_thread() -> Any:
        store.submit_sync(statements.create_run, RunRow("t", "wf", "running", "null", 1.0, 1.0))
        return store.read_sync(statements.get_run, "t")

    row = await trio.to_thread.run_sync(in_thread)
    assert row.run_id == "t"
    await store.close()
