"""The store contract (engine/store/base.py), the same for MemoryStore, SQLiteStore and
PostgresStore (on a real server: tests/pg.py)."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from tarry import RunAlreadyExists, RunFinished, RunNotFound, RunNotRetryable, RunStateError, Store, lifecycle
from tarry.journal import EntryRow, RunRow, Write


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run_row(run_id: str = "r1", workflow_id: str = "wf", *, at: float = 100.0, status: str = "running") -> RunRow:
    return RunRow(run_id, workflow_id, status, '{"x":1}', at, at)


def entry(seq: int, step_id: str, *, status: str = "completed", output: str | None = '"ok"') -> EntryRow:
    return EntryRow("r1", seq, step_id, "step", status, 1.0, 2.0, output)


async def test_create_run_then_read_it_back(store: Store) -> None:
    row, created = await store.create_run(run_row())
    assert created
    stored = await store.get_run("r1")
    assert stored == row
    assert await store.get_run("missing") is None


async def test_create_run_is_idempotent_per_workflow(store: Store) -> None:
    await store.create_run(run_row())
    again, created = await store.create_run(run_row(at=999.0))
    assert not created
    assert again.created_at == 100.0  # the stored row, not the new one
    with pytest.raises(RunAlreadyExists) as caught:
        await store.create_run(run_row(workflow_id="other"))
    assert caught.value.workflow_id == "wf"


async def test_returned_rows_do_not_alias_stored_state(store: Store) -> None:
    await store.create_run(run_row())
    row = await store.get_run("r1")
    assert row is not None
    row.status = "completed"
    stored = await store.get_run("r1")
    assert stored is not None
    assert stored.status == "running"


async def test_write_applies_entries_and_run_columns_together(store: Store) -> None:
    await store.create_run(run_row())
    ok = await store.write(
        Write("r1", 150.0, run={"status": "suspended", "wake_at": 200.0}, entries=[entry(0, "a"), entry(1, "b")])
    )
    assert ok
    loaded = await store.load("r1")
    assert loaded is not None
    row, journal, inbox = loaded
    assert (row.status, row.wake_at, row.updated_at, row.last_step) == ("suspended", 200.0, 150.0, "b")
    assert [e.step_id for e in journal] == ["a", "b"]
    assert inbox == []
    # An entry at an existing position replaces it (a sleep going from waiting to completed).
    await store.write(Write("r1", 160.0, entries=[entry(1, "b", output='"again"')]))
    entries, _ = await store.history("r1")
    assert [e.output for e in entries] == ['"ok"', '"again"']


async def test_write_require_guards_the_status(store: Store) -> None:
    await store.create_run(run_row())
    applied = await store.write(
        Write("r1", 150.0, run={"status": "completed"}, entries=[entry(0, "a")], require=frozenset({"suspended"}))
    )
    assert not applied
    row = await store.get_run("r1")
    assert row is not None
    assert row.status == "running"
    assert (await store.history("r1"))[0] == []  # nothing of the write landed


async def test_write_to_unknown_run(store: Store) -> None:
    with pytest.raises(RunNotFound):
        await store.write(Write("nope", 1.0, run={"status": "completed"}))


async def test_signals_inbox_and_atomic_consumption(store: Store) -> None:
    await store.create_run(run_row())
    first = await store.add_signal("r1", "go", '{"n":1}', 10.0)
    second = await store.add_signal("r1", "go", '{"n":2}', 11.0)
    assert second.id > first.id
    loaded = await store.load("r1")
    assert loaded is not None
    assert [s.payload for s in loaded[2]] == ['{"n":1}', '{"n":2}']
    assert await store.write(Write("r1", 12.0, entries=[entry(0, "wait")], consume=[(first.id, "wait")]))
    # Consuming it twice fails the whole write: no entry, no status change.
    with pytest.raises(RunStateError, match="already consumed"):
        await store.write(
            Write("r1", 13.0, run={"status": "completed"}, entries=[entry(1, "wait2")], consume=[(first.id, "wait2")])
        )
    row = await store.get_run("r1")
    assert row is not None
    assert row.status == "running"
    entries, signals = await store.history("r1")
    assert [e.step_id for e in entries] == ["wait"]
    assert [(s.consumed_by, s.consumed_at) for s in signals] == [("wait", 12.0), (None, None)]
    loaded = await store.load("r1")
    assert loaded is not None
    assert [s.id for s in loaded[2]] == [second.id]


async def test_signal_to_unknown_or_finished_run_writes_nothing(store: Store) -> None:
    with pytest.raises(RunNotFound):
        await store.add_signal("nope", "go", "null", 1.0)
    await store.create_run(run_row())
    await store.write(Write("r1", 2.0, run={"status": "failed"}))
    with pytest.raises(RunFinished) as caught:
        await store.add_signal("r1", "go", "null", 3.0)
    assert caught.value.status == "failed"
    assert (await store.history("r1"))[1] == []


async def test_transition_cancel(store: Store) -> None:
    await store.create_run(run_row("running"))
    await store.create_run(run_row("sleeping", status="suspended"))
    (running,) = await store.transition("running", lifecycle.cancel("stop", 5.0), descendants=True)
    assert (running.status, running.cancel_reason) == ("running", "stop")  # its owner finishes it
    (sleeping,) = await store.transition("sleeping", lifecycle.cancel("stop", 5.0), descendants=True)
    assert (sleeping.status, sleeping.cancel_reason, sleeping.wake_at) == ("cancelled", "stop", None)
    with pytest.raises(RunFinished):
        await store.transition("sleeping", lifecycle.cancel("again", 6.0), descendants=True)
    with pytest.raises(RunNotFound):
        await store.transition("nope", lifecycle.cancel("x", 6.0))


async def test_transition_cancel_reaches_every_descendant(store: Store) -> None:
    """A parent's cancel ends its suspended children and grandchildren in one transaction,
    asks its running ones to stop, and leaves ended children and look-alike ids alone."""
    await store.create_run(run_row("p", status="suspended"))
    for run_id, parent, status in [
        ("p:a", "p", "suspended"),
        ("p:a:x", "p:a", "suspended"),
        ("p:b", "p", "running"),
        ("p:c", "p", "completed"),
    ]:
        await store.create_run(replace(run_row(run_id, status=status), parent_run_id=parent))
    await store.create_run(run_row("p:lookalike", status="suspended"))  # not a child: no parent
    rows = await store.transition("p", lifecycle.cancel("stop", 5.0), descendants=True)
    assert [(r.run_id, r.status) for r in rows] == [
        ("p", "cancelled"),
        ("p:a", "cancelled"),
        ("p:b", "running"),
        ("p:a:x", "cancelled"),
    ]
    assert rows[2].cancel_reason == "its parent run 'p' was cancelled"
    for run_id, status in [("p:c", "completed"), ("p:lookalike", "suspended")]:
        row = await store.get_run(run_id)
        assert row is not None
        assert row.status == status
    # The parent was cancelled in the same transaction: its children's outcomes are dropped.
    assert (await store.history("p"))[1] == []


async def test_transition_cancel_of_a_child_tells_its_parent(store: Store) -> None:
    await store.create_run(run_row("p", status="suspended"))
    await store.create_run(replace(run_row("p:a", status="suspended"), parent_run_id="p"))
    (child,) = await store.transition("p:a", lifecycle.cancel("no longer wanted", 5.0), descendants=True)
    assert child.status == "cancelled"
    (signal,) = (await store.history("p"))[1]
    assert signal.event == "tarry.child:p:a"
    outcome = orjson.loads(signal.payload)
    assert outcome["status"] == "cancelled"
    assert outcome["error"] == {"type": "RunCancelled", "message": "no longer wanted"}
    parent = await store.get_run("p")
    assert parent is not None
    assert parent.status == "suspended"  # the parent's own wait takes the outcome


async def test_transition_retry(store: Store) -> None:
    await store.create_run(run_row())
    error = '{"type": "X", "message": "no", "step_id": "b"}'
    await store.write(
        Write(
            "r1", 2.0, run={"status": "failed", "error": error}, entries=[entry(0, "a"), entry(1, "b", status="failed")]
        )
    )
    (row,) = await store.transition("r1", lifecycle.retry(3.0), journal=True)
    assert (row.status, row.error, row.attempt) == ("running", None, 2)
    assert [e.step_id for e in (await store.history("r1"))[0]] == ["a"]
    with pytest.raises(RunNotRetryable):
        await store.transition("r1", lifecycle.retry(4.0), journal=True)


async def test_truncate_for_retry(store: Store) -> None:
    await store.create_run(run_row())
    await store.write(Write("r1", 2.0, entries=[entry(0, "a"), entry(1, "b", status="failed", output=None)]))
    await store.write(Write("r1", 3.0, run={"status": "running"}, truncate_from=1))
    entries, _ = await store.history("r1")
    assert [e.step_id for e in entries] == ["a"]


async def test_queries_for_recovery(store: Store) -> None:
    for i, (status, wake_at, wait_event) in enumerate(
        [
            ("suspended", 10.0, None),
            ("suspended", 20.0, "go"),
            ("suspended", 30.0, None),
            ("running", None, None),
            ("completed", None, None),
            ("suspended", None, "go"),
        ]
    ):
        await store.create_run(run_row(f"r{i}", at=float(i)))
        await store.write(
            Write(f"r{i}", float(i), run={"status": status, "wake_at": wake_at, "wait_event": wait_event})
        )
    assert await store.due_runs(20.0) == [("r0", 10.0), ("r1", 20.0)]
    assert await store.due_runs(100.0, limit=1) == [("r0", 10.0)]
    assert await store.next_wake_after(20.0) == 30.0
    assert await store.next_wake_after(30.0) is None
    assert await store.running_runs() == ["r3"]
    assert await store.runs_with_signals() == []
    await store.add_signal("r5", "go", "null", 1.0)
    await store.add_signal("r1", "other", "null", 1.0)  # not the awaited event
    assert await store.runs_with_signals() == ["r5"]
    assert await store.count_by_status() == {"suspended": 4, "running": 1, "completed": 1}


async def test_list_runs_newest_first_with_filters(store: Store) -> None:
    for i in range(5):
        await store.create_run(run_row(f"r{i}", "even" if i % 2 == 0 else "odd", at=float(i)))
    await store.write(Write("r4", 9.0, run={"status": "completed"}))
    assert [r.run_id for r in await store.list_runs()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.run_id for r in await store.list_runs(workflow_id="odd")] == ["r3", "r1"]
    assert [r.run_id for r in await store.list_runs(status="completed")] == ["r4"]
    assert [r.run_id for r in await store.list_runs(status=["running"], limit=2, offset=1)] == ["r2", "r1"]
    assert len(await store.list_runs(limit=None)) == 5


async def test_write_behind_commits_before_the_next_awaited_write(store: Store) -> None:
    await store.create_run(run_row(status="suspended"))
    store.write_behind(Write("r1", 5.0, run={"status": "running"}, entries=[entry(0, "nap")]))
    await store.write(Write("r1", 6.0, entries=[entry(1, "next")]))
    row = await store.get_run("r1")
    assert row is not None
    assert row.status == "running"
    assert [e.step_id for e in (await store.history("r1"))[0]] == ["nap", "next"]
    # A failing write-behind is logged and changes nothing.
    store.write_behind(Write("missing", 7.0, run={"status": "running"}))
    await store.write(Write("r1", 8.0, entries=[entry(2, "after")]))
    assert await store.get_run("missing") is None


async def test_a_dedup_key_stores_a_signal_once_for_the_runs_lifetime(store: Store) -> None:
    from tarry import IdempotencyConflict

    await store.create_run(run_row())
    first = await store.add_signal("r1", "go", '{"a":1}', 1.0, "k1")
    assert not first.duplicate
    again = await store.add_signal("r1", "go", '{"a": 1}', 2.0, "k1")  # the same JSON value
    assert again.duplicate
    assert again.id == first.id
    await store.write(Write("r1", 3.0, consume=[(first.id, "wait")]))
    assert (await store.add_signal("r1", "go", '{"a":1}', 4.0, "k1")).duplicate  # consumed: still known
    with pytest.raises(IdempotencyConflict) as caught:
        await store.add_signal("r1", "stop", '{"a":1}', 5.0, "k1")
    assert "k1" in str(caught.value)
    other = await store.add_signal("r1", "go", '{"a":1}', 6.0, "k2")
    keyless = [await store.add_signal("r1", "go", "null", 7.0) for _ in range(2)]
    _, signals = await store.history("r1")
    assert [s.id for s in signals] == [first.id, other.id, *(s.id for s in keyless)]
    await store.write(Write("r1", 8.0, run={"status": "completed"}))
    assert (await store.add_signal("r1", "go", '{"a":1}', 9.0, "k1")).duplicate  # a repeat to an ended run is quiet
    with pytest.raises(RunFinished):
        await store.add_signal("r1", "go", '{"a":1}', 9.0, "k3")


async def test_a_write_can_send_a_signal_to_another_run(store: Store) -> None:
    await store.create_run(run_row("parent"))
    await store.create_run(run_row("done", status="completed"))
    await store.create_run(run_row("r1"))
    write = Write(
        "r1", 5.0, run={"status": "completed"}, signals=[("parent", "tarry.child:r1", '"out"'), ("done", "x", "1")]
    )
    assert await store.write(write)
    loaded = await store.load("parent")
    assert loaded is not None
    assert [(s.event, s.payload) for s in loaded[2]] == [("tarry.child:r1", '"out"')]
    _, done_signals = await store.history("done")
    assert done_signals == []  # an ended run gets nothing


async def test_a_multi_event_wait_is_found_by_runs_with_signals(store: Store) -> None:
    await store.create_run(run_row())
    await store.write(Write("r1", 2.0, run={"status": "suspended", "wait_event": "yes\x1fno"}))
    await store.add_signal("r1", "maybe", "1", 3.0)
    assert await store.runs_with_signals() == []
    await store.add_signal("r1", "no", "1", 4.0)
    assert await store.runs_with_signals() == ["r1"]


async def test_prune_deletes_ended_runs_only_in_batches(store: Store) -> None:
    for i, status in enumerate(["running", "failed", "cancelled", "running", "suspended", "completed"]):
        await store.create_run(run_row(f"r{i}", at=10.0 + i, status=status))
    await store.add_signal("r0", "go", "1", 10.0, "key")
    entries = [EntryRow("r0", 0, "s", "step", "completed", 1.0, 2.0, '"ok"')]
    await store.write(Write("r0", 10.0, run={"status": "completed"}, entries=entries))
    assert await store.prune(before=12.5, statuses=["completed", "failed", "cancelled"], limit=2) == 2  # r0, r1
    assert await store.get_run("r0") is None
    assert await store.load("r0") is None
    assert await store.prune(before=100.0, statuses=["completed"], limit=10) == 1  # r5; r2 is cancelled
    assert await store.prune(before=100.0, statuses=["running", "suspended"], limit=10) == 0  # never active runs
    left = sorted(r.run_id for r in await store.list_runs(limit=None))
    assert left == ["r2", "r3", "r4"]
    await store.create_run(run_row("r0"))  # the id is free again, with no old signal keys
    assert not (await store.add_signal("r0", "go", "1", 11.0, "key")).duplicate
