"""tarry.Client: the verbs through the database file, validation like in-process, and a
worker in this process noticing the Client's writes."""

from __future__ import annotations

import dataclasses
import sqlite3
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
import trio

from tarry import (
    Client,
    DatabaseMissing,
    IdempotencyConflict,
    InvalidArgument,
    NotATarryDatabase,
    NotSerializable,
    PayloadValidationError,
    RunAlreadyExists,
    RunFinished,
    RunNotFound,
    RunNotRetryable,
    SchemaTooNew,
    SQLiteStore,
    WaitTimeout,
    Worker,
    WorkflowError,
    WorkflowNotFound,
    create_runtime,
    workflow,
)
from tarry.registry import check_payload, describe
from tarry.store.sqlite import SCHEMA_VERSION

from .workflows_cli import WORKFLOWS


class Order(pydantic.BaseModel):
    order_id: str
    amount: int = 1


class Line(msgspec.Struct):
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Ticket:
    title: str
    priority: int = 3
    tags: list[str] | None = None


def positive(value: Any) -> int:
    if not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive int")
    return value


@workflow("order", payload=Order, description="Charge and ship.")
async def order(ctx: Any) -> Any:
    return ctx.payload.order_id


@workflow("line", payload=Line)
async def line(ctx: Any) -> Any:
    return ctx.payload.sku


@workflow("ticket", payload=Ticket)
async def ticket(ctx: Any) -> Any:
    return ctx.payload.title


@workflow("count", payload=positive)
async def count(ctx: Any) -> Any:
    return ctx.payload


@workflow("free")
async def free(ctx: Any) -> Any:
    return ctx.payload


LOCAL = [order, line, ticket, count, free]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tarry.db"


def publish(db: Path, workflows: list[Any]) -> None:
    """What a worker does when it takes the lease."""
    with Client(db) as client:
        client.store.publish_workflows([describe(w) for w in workflows], "test", time.time())


# -- opening -----------------------------------------------------------------------------------


def test_a_missing_file_is_created_unless_told_not_to(tmp_path: Path) -> None:
    with pytest.raises(DatabaseMissing) as caught:
        Client(tmp_path / "nope.db", create=False)
    assert caught.value.code == "store_missing"
    assert not (tmp_path / "nope.db").exists()
    with Client(tmp_path / "new.db") as client:
        assert client.list_runs() == []
        assert client.engine_info().schema_version == SCHEMA_VERSION
    assert (tmp_path / "new.db").exists()


def test_a_file_that_is_not_a_tarry_database_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 100)
    with pytest.raises(NotATarryDatabase):
        Client(text)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE things (x)")
    conn.close()
    with pytest.raises(NotATarryDatabase, match="things"):
        Client(other)


def test_a_database_from_a_newer_tarry_is_refused_and_left_alone(db: Path) -> None:
    Client(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(SchemaTooNew) as caught:
        Client(db)
    assert (caught.value.found, caught.value.supported) == (99, SCHEMA_VERSION)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
    conn.close()


def test_a_closed_client_says_so(db: Path) -> None:
    client = Client(db)
    client.close()
    client.close()  # idempotent
    with pytest.raises(InvalidArgument, match="closed"):
        client.list_runs()
    assert "closed" in repr(client)


# -- validation, with the code ---------------------------------------------------------------------


def test_with_the_code_validation_is_the_runtimes(db: Path) -> None:
    with Client(db, workflows=LOCAL) as client:
        with pytest.raises(WorkflowNotFound) as caught:
            client.trigger("nope", {})
        assert caught.value.known == sorted(w.id for w in LOCAL)
        with pytest.raises(PayloadValidationError) as invalid:
            client.trigger("order", {"amount": "lots"})
        assert {e["field"] for e in invalid.value.errors} == {"order_id", "amount"}
        with pytest.raises(PayloadValidationError, match="must be a positive int"):
            client.trigger("count", -1)
        with pytest.raises(NotSerializable):
            client.trigger("free", {"when": {1, 2}})
        with pytest.raises(InvalidArgument, match="run_id"):
            client.trigger("free", 1, run_id=" ")
        assert client.list_runs() == []  # nothing was written

        run = client.trigger("order", {"order_id": "o_1"}, run_id="o-1")
        assert (run.run_id, run.workflow_id, run.status) == ("o-1", "order", "running")
        assert client.get_run("o-1").payload == {"order_id": "o_1", "amount": 1}  # as the model dumps it
        again = client.trigger("order", {"order_id": "o_1"}, run_id="o-1")  # idempotent
        assert again.run_id == "o-1"
        with pytest.raises(IdempotencyConflict, match="another payload"):
            client.trigger("order", {"order_id": "other"}, run_id="o-1")
        assert client.get_run("o-1").payload["order_id"] == "o_1"
        with pytest.raises(RunAlreadyExists):
            client.trigger("free", None, run_id="o-1")
        assert client.trigger(order, {"order_id": "by object"}).workflow_id == "order"
        assert {w.id: w.source for w in client.workflows()} == dict.fromkeys((w.id for w in LOCAL), "local")


# -- validation, against what the worker published ---------------------------------------------------


def test_without_the_code_the_published_registry_validates(db: Path) -> None:
    publish(db, LOCAL)
    with Client(db) as client:
        known = {w.id: w for w in client.workflows()}
        assert set(known) == {w.id for w in LOCAL}
        assert known["order"].source == "published"
        assert known["order"].description == "Charge and ship."
        assert known["order"].schema is not None
        assert known["count"].schema_kind == "callable"
        assert known["count"].schema is None

        with pytest.raises(WorkflowNotFound, match="line, order, ticket"):
            client.trigger("nope", {})
        for name, bad, fields in [
            ("order", {"amount": "lots"}, {"order_id", "amount"}),
            ("line", {"qty": 2}, {"sku"}),
            ("ticket", {"title": 3, "colour": "red"}, {"title", "colour"}),
            ("ticket", {"title": "t", "tags": "x"}, {"tags"}),
        ]:
            with pytest.raises(PayloadValidationError) as caught:
                client.trigger(name, bad)
            assert {e["field"] for e in caught.value.errors} == fields, (name, caught.value.errors)
            assert caught.value.workflow_id == name
        assert client.list_runs() == []

        ok = client.trigger("order", {"order_id": "o_2"})
        assert client.get_run(ok.run_id).payload == {"order_id": "o_2", "amount": 1}  # the default filled in
        client.trigger("line", {"sku": "s"})
        client.trigger("ticket", {"title": "t", "tags": ["a"]})
        # A plain validator publishes no schema: accepted here, checked by the worker.
        client.trigger("count", -5)
        assert len(client.list_runs()) == 4


def test_before_any_worker_published_anything_triggers_are_accepted(db: Path) -> None:
    with Client(db) as client:
        assert client.workflows() == []
        run = client.trigger("whatever", {"any": "thing"})
        assert run.status == "running"
        assert client.engine_info().pending_changes == 1


def test_check_payload_handles_refs_unions_and_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
            "size": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 9}, {"type": "null"}], "default": None},
            "kind": {"enum": ["a", "b"]},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 2},
        },
        "required": ["name", "items"],
        "additionalProperties": False,
        "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "number", "default": 1.5}}}},
    }
    assert check_payload("w", schema, {"name": "ab", "items": [{}]}) == {
        "name": "ab",
        "size": None,
        "items": [{"n": 1.5}],
    }
    with pytest.raises(PayloadValidationError) as caught:
        check_payload("w", schema, {"name": "A", "size": 10, "kind": "c", "items": [{"n": "x"}] * 3, "z": 1})
    fields = {e["field"] for e in caught.value.errors}
    assert fields == {"name", "size", "kind", "items", "items.0.n", "items.1.n", "items.2.n", "z"}
    assert check_payload("w", None, {"anything": 1}) == {"anything": 1}
    assert check_payload("w", {"type": "integer"}, 2.0) == 2.0
    with pytest.raises(PayloadValidationError):
        check_payload("w", {"type": "integer"}, True)


# -- the other verbs' errors -----------------------------------------------------------------------


def test_unknown_runs_finished_runs_and_bad_arguments(db: Path) -> None:
    with Client(db, workflows=LOCAL) as client:
        for call in (
            lambda: client.signal("nope", "x"),
            lambda: client.cancel("nope"),
            lambda: client.retry("nope"),
            lambda: client.get_run("nope"),
            lambda: client.wait("nope", 1),
        ):
            with pytest.raises(RunNotFound) as caught:
                call()
            assert caught.value.run_id == "nope"
        run = client.trigger("free", None)
        with pytest.raises(InvalidArgument, match="event name"):
            client.signal(run.run_id, "")
        with pytest.raises(NotSerializable, match="signal payload"):
            client.signal(run.run_id, "e", {1, 2})
        with pytest.raises(RunNotRetryable):
            client.retry(run.run_id)
        cancelled = client.cancel(run.run_id, reason="testing")
        assert cancelled.status == "running"  # nobody runs it yet: the worker ends it
        assert client.get_run(run.run_id).cancel_reason == "testing"
        with pytest.raises(InvalidArgument, match="unknown status"):
            client.list_runs(status="done")
        with pytest.raises(InvalidArgument):
            client.list_runs(limit=-1)


def test_list_runs_filters_and_searches(db: Path) -> None:
    with Client(db, workflows=LOCAL) as client:
        client.trigger("order", {"order_id": "needle_42"}, run_id="r-a")
        client.trigger("line", {"sku": "50%off"}, run_id="r-b")
        client.trigger("free", None, run_id="needle-run")
        assert [r.run_id for r in client.list_runs()] == ["needle-run", "r-b", "r-a"]
        assert {r.run_id for r in client.list_runs(search="NEEDLE")} == {"r-a", "needle-run"}
        assert [r.run_id for r in client.list_runs(search="50%")] == ["r-b"]
        assert client.list_runs(search="0%x") == []  # % is not a wildcard
        assert [r.run_id for r in client.list_runs(search="lin")] == ["r-b"]  # the workflow id
        assert [r.run_id for r in client.list_runs(workflow_id="order")] == ["r-a"]
        assert [r.run_id for r in client.list_runs(limit=1, offset=1)] == ["r-b"]
        assert client.list_runs(status=["completed", "failed"]) == []
        assert client.count_by_status() == {"running": 3, "suspended": 0, "completed": 0, "failed": 0, "cancelled": 0}


def test_list_runs_with_payload_pairs_each_run_with_its_payload(db: Path) -> None:
    with Client(db, workflows=LOCAL) as client:
        client.trigger("order", {"order_id": "o-1"}, run_id="r-a")
        client.trigger("free", ["x", 2], run_id="r-b")
        client.trigger("free", None, run_id="r-c")
        found = client.list_runs_with_payload()
        assert [(r.run_id, payload) for r, payload in found] == [
            ("r-c", None),
            ("r-b", ["x", 2]),
            ("r-a", {"order_id": "o-1", "amount": 1}),  # as validated and stored
        ]
        assert [r for r, _ in found] == client.list_runs()
        assert [r.run_id for r, _ in client.list_runs_with_payload(search="o-1", limit=5)] == ["r-a"]
        with pytest.raises(InvalidArgument, match="waiting"):
            client.list_runs_with_payload(waiting="human")


async def test_list_and_count_the_runs_waiting_for_a_person(db: Path) -> None:
    with Client(db) as client:
        first = client.trigger("approval", {"title": "first"})
        other = client.trigger("steps", {"seconds": 0})
        assert uuid.UUID(first.run_id).version == 7  # the Client makes run ids as the runtime does
        async with serving(db):
            assert (await call(client.wait, first.run_id, 5)).status == "suspended"
            assert (await call(client.wait, other.run_id, 5)).status == "completed"
            second = client.trigger("approval", {"title": "second"})
            assert (await call(client.wait, second.run_id, 5)).status == "suspended"
            waiting = client.list_runs(waiting="event", oldest_first=True)
            assert [r.run_id for r in waiting] == [first.run_id, second.run_id]  # the longest wait first
            assert client.list_runs(waiting="event")[0].run_id == second.run_id  # newest first by default
            assert client.count(waiting="event") == 2
            assert client.count(waiting="event", search="second") == 1
            assert client.count(waiting="sleep") == 0
            assert client.count(status="completed") == 1
            assert client.count() == 3
            with pytest.raises(InvalidArgument, match="waiting"):
                client.list_runs(waiting="human")


def test_wait_times_out_with_a_typed_timeout_error(db: Path) -> None:
    with Client(db) as client:
        run = client.trigger("free", None)
        start = time.monotonic()
        with pytest.raises(WaitTimeout) as caught:
            client.wait(run.run_id, 0.2)
        assert 0.15 < time.monotonic() - start < 2
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, WorkflowError)
        assert (caught.value.code, caught.value.status, caught.value.run_id) == ("wait_timeout", "running", run.run_id)


def test_data_version_moves_when_another_connection_commits(db: Path) -> None:
    with Client(db) as watcher, Client(db) as writer:
        before = watcher.data_version()
        assert watcher.data_version() == before
        writer.trigger("free", None)
        after = watcher.data_version()
        assert after != before
        assert watcher.data_version() == after
        watcher.trigger("free", None)  # its own writes count too (another connection writes them)
        assert watcher.data_version() != after


def test_engine_info_without_a_worker(db: Path) -> None:
    with Client(db) as client:
        client.trigger("free", None)
        info = client.engine_info()
    assert info.worker is None
    assert info.worker_alive is False
    assert info.heartbeat_age is None
    assert info.runs["running"] == 1
    assert info.size_bytes > 0
    assert info.to_dict()["path"] == str(db)


# -- with a worker in this process -----------------------------------------------------------------


@asynccontextmanager
async def serving(db: Path, **options: Any) -> AsyncIterator[Worker]:
    worker = Worker(create_runtime(WORKFLOWS, SQLiteStore(db), **options.pop("runtime", {})), **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        yield worker
        worker.stop(grace=0)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def test_workers_alive_counts_the_workers_serving_the_database(db: Path) -> None:
    with Client(db) as client:
        assert client.workers_alive() == 0
        async with serving(db):
            assert client.workers_alive() == 1
        assert client.workers_alive() == 0  # a stopped worker releases its lease at once


async def test_the_worker_picks_up_what_was_triggered_before_it_started(db: Path) -> None:
    with Client(db) as client:
        early = client.trigger("approval", {"title": "early"})
        signalled = client.trigger("approval", {"title": "signalled"})
        client.signal(signalled.run_id, "approve", {"approved": True, "by": "x"})  # before it even waits
        async with serving(db) as worker:
            assert (await call(client.wait, early.run_id, 5)).status == "suspended"
            done = await call(client.wait, signalled.run_id, 5)
            assert done.output == {"published": True, "by": "x"}
            assert client.engine_info().pending_changes == 0
            assert client.engine_info().worker == worker.owner
            assert {w.id for w in client.workflows()} == {w.id for w in WORKFLOWS}


@pytest.mark.parametrize("passivate_after", [5.0, 0.0])
async def test_signals_reach_warm_and_passivated_runs(db: Path, passivate_after: float) -> None:
    async with serving(db, runtime={"passivate_after": passivate_after}):
        with Client(db) as client:
            run = await call(client.trigger, "approval", {"title": "t"})
            assert (await call(client.wait, run.run_id, 5)).status == "suspended"
            await call(client.signal, run.run_id, "approve", {"approved": True, "by": "ana"})
            done = await call(client.wait, run.run_id, 5)
    assert done.status == "completed"
    assert done.output == {"published": True, "by": "ana"}


async def test_trigger_then_signal_at_once_is_not_lost(db: Path) -> None:
    async with serving(db):
        with Client(db) as client:

            def burst() -> list[str]:
                ids = []
                for i in range(50):
                    run = client.trigger("ping", None)
                    client.signal(run.run_id, "go", i)
                    ids.append(run.run_id)
                return ids

            ids = await call(burst)
            results = [await call(client.wait, run_id, 10) for run_id in ids]
    assert [r.output for r in results] == list(range(50))


async def test_cancel_a_running_step_and_a_suspended_run(db: Path) -> None:
    async with serving(db):
        with Client(db) as client:
            busy = await call(client.trigger, "steps", {"seconds": 60})
            await trio.sleep(0.2)
            requested = await call(client.cancel, busy.run_id, reason="too slow")
            assert requested.status == "running"
            cancelled = await call(client.wait, busy.run_id, 5)
            assert cancelled.status == "cancelled"
            waiting = await call(client.trigger, "approval", {"title": "t"})
            await call(client.wait, waiting.run_id, 5)
            assert (await call(client.cancel, waiting.run_id)).status == "cancelled"
            with pytest.raises(RunFinished):
                await call(client.signal, waiting.run_id, "approve", {})
    with Client(db) as client:
        info = client.get_run(busy.run_id)
    assert info.cancel_reason == "too slow"
    assert info.history == []


async def test_retry_a_failed_run_and_a_bad_payload_fails_at_the_worker(db: Path, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    async with serving(db):
        with Client(db) as client:
            run = await call(client.trigger, "flaky", {"path": str(flag)})
            failed = await call(client.wait, run.run_id, 5)
            assert failed.status == "failed"
            assert failed.error is not None
            assert failed.error.step_id == "check"
            flag.touch()
            assert (await call(client.retry, run.run_id)).status == "running"
            done = await call(client.wait, run.run_id, 5)
            assert done.status == "completed"
            assert client.get_run(run.run_id).attempt == 2

            bad = await call(client.trigger, "checked", -1)  # a plain validator: only the worker checks
            rejected = await call(client.wait, bad.run_id, 5)
    assert rejected.status == "failed"
    assert rejected.error is not None
    assert rejected.error.type == "PayloadValidationError"
    assert "positive" in rejected.error.message


@pytest.mark.parametrize("wake_socket", [True, False])
async def test_the_worker_notices_a_signal_within_50_ms(db: Path, wake_socket: bool) -> None:
    """From Client.signal returning to the next step committed (the issue: within 50 ms; the
    datagram makes it a few ms, the data_version poll alone ~20 ms)."""
    async with serving(db, wake_socket=wake_socket):
        with Client(db) as client:

            def measure() -> list[float]:
                took = []
                for _ in range(15):
                    run = client.trigger("ping", None)
                    client.wait(run.run_id, 5)
                    start = time.time()
                    client.signal(run.run_id, "go")
                    client.wait(run.run_id, 5)
                    after = client.get_run(run.run_id).history[-1]
                    assert after.finished_at is not None
                    took.append(after.finished_at.timestamp() - start)
                return took

            took = await call(measure)
    assert statistics.median(took) < 0.05, took
