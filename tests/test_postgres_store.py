"""What only PostgresStore does, on a real server (tests/pg.py): run ownership and its
fence, claims with SKIP LOCKED, LISTEN/NOTIFY, the clients' outbox, the schema check and
the errors of a server that is not there.

Workers here are PostgresStore objects with a lease and an owner (what tarry.Worker
sets up), driven by hand; tests/test_postgres_workers.py runs real worker processes.

"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

pytest.importorskip("psycopg", reason="PostgresStore needs psycopg: pip install 'tarry[postgres]'")

import psycopg

from tarry import LeaseLost, SchemaTooNew, StoreError, lifecycle
from tarry.journal import EntryRow, RunRow, Write
from tarry.store.postgres import SCHEMA_VERSION, PostgresStore

Stores = Callable[..., PostgresStore]


def cancel(store: Any, run_id: str, reason: str, at: float) -> RunRow:
    """A client's cancel, as tarry.Client sends it."""
    rows: list[RunRow] = store.client_transition(
        run_id, lifecycle.cancel(reason, at), announce="cancel", descendants=True
    )
    return rows[0]


def retry(store: Any, run_id: str, at: float) -> RunRow:
    """A client's retry, as tarry.Client sends it."""
    rows: list[RunRow] = store.client_transition(run_id, lifecycle.retry(at), announce="retry", journal=True)
    return rows[0]


def run_row(run_id: str, *, status: str = "running", at: float = 100.0) -> RunRow:
    return RunRow(run_id, "wf", status, '{"x":1}', at, at)


def entry(run_id: str, seq: int, step_id: str, *, status: str = "completed") -> EntryRow:
    return EntryRow(run_id, seq, step_id, "step", status, 1.0, 2.0, '"ok"' if status == "completed" else None)


def sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own (autocommit)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def stores() -> Iterator[Stores]:
    """``stores(url, owner=None, ttl=30, on_lost=None)``: an open store; with an owner, it
    holds the lease ``worker:<owner>`` for ``ttl`` seconds and commits as that owner (what
    a Worker does). Every store is closed at the end."""
    made: list[PostgresStore] = []

    def make(
        url: str, owner: str | None = None, *, ttl: float = 30.0, on_lost: Callable[[], None] | None = None
    ) -> PostgresStore:
        store = PostgresStore(url)
        made.append(store)
        store.open_sync()
        if owner is not None:
            taken, _ = store.lease_acquire(store.lease_name(owner), owner, time.time(), ttl, {"pid": 0})
            assert taken
            store.set_owner(owner, on_lost)
        return store

    yield make
    for store in made:
        store.close_sync()


def owners(url: str) -> dict[str, str | None]:
    return dict(sql(url, "SELECT run_id, owner FROM tarry_runs"))


# -- ownership and the fence --------------------------------------------------------------------


async def test_a_worker_whose_lease_ran_out_commits_nothing_more(postgres_url: str, stores: Stores) -> None:
    lost: list[str] = []
    a = stores(postgres_url, "a", ttl=0.6, on_lost=lambda: lost.append(threading.current_thread().name))
    await a.create_run(run_row("r1"))
    await a.write(Write("r1", 2.0, entries=[entry("r1", 0, "one")]))
    assert owners(postgres_url) == {"r1": "a"}

    await trio.sleep(0.7)  # a stalls past its lease; b joins and takes a's runs over
    b = stores(postgres_url, "b")
    claimed = await trio.to_thread.run_sync(b.changes_after, 0, 100)
    assert [(c.seq, c.kind, c.run_id) for c in claimed] == [(0, "claim", "r1")]
    assert claimed[0].run is not None
    assert claimed[0].run.last_step == "one"
    assert owners(postgres_url) == {"r1": "b"}

    with pytest.raises(LeaseLost) as caught:
        await a.write(Write("r1", 3.0, entries=[entry("r1", 1, "two")]))
    assert caught.value.owner == "a"
    with pytest.raises(LeaseLost):  # and so on: nothing of a commits any more
        await a.write(Write("r1", 3.5, run={"status": "completed"}))
    with pytest.raises(LeaseLost):
        await a.create_run(run_row("r2"))
    assert len(lost) == 1  # on_lost once, from the writer thread
    assert "password" not in caught.value.message

    await b.write(Write("r1", 4.0, entries=[entry("r1", 1, "two-by-b")]))
    entries, _ = await b.history("r1")
    assert [e.step_id for e in entries] == ["one", "two-by-b"]
    assert await b.get_run("r2") is None


async def test_a_run_another_worker_owns_is_fenced_even_while_the_lease_is_current(
    postgres_url: str, stores: Stores
) -> None:
    lost: list[int] = []
    a = stores(postgres_url, "a", ttl=0.6, on_lost=lambda: lost.append(1))
    await a.create_run(run_row("r1"))
    await trio.sleep(0.7)
    b = stores(postgres_url, "b")
    assert [c.run_id for c in await trio.to_thread.run_sync(b.changes_after, 0, 100)] == ["r1"]
    # a comes back (say its clock ran behind b's) and holds a current lease again: the run
    # is b's now all the same.
    # (Through a store without an owner: a's own store fails every op once its lease ran
    # out, lease verbs included.)
    helper = stores(postgres_url)
    taken, _ = await trio.to_thread.run_sync(helper.lease_acquire, a.lease_name("a"), "a", time.time(), 30.0, {})
    assert taken
    with pytest.raises(LeaseLost) as caught:
        await a.write(Write("r1", 3.0, entries=[entry("r1", 0, "stale")]))
    assert caught.value.holder == "b"
    assert (await b.history("r1"))[0] == []
    # A run of another (live) worker: refused alone; a goes on with its own runs.
    assert lost == []
    assert await a.load("r1") is None  # and its runtime would not even load it


async def test_runtime_reads_see_only_the_owners_runs(postgres_url: str, stores: Stores) -> None:
    a = stores(postgres_url, "a")
    b = stores(postgres_url, "b")
    everyone = stores(postgres_url)  # no owner: a plain runtime sees every run
    for store, run_id in ((a, "a1"), (b, "b1")):
        await store.create_run(run_row(run_id))
        await store.create_run(run_row(f"{run_id}-sleeps"))
        await store.write(Write(f"{run_id}-sleeps", 5.0, run={"status": "suspended", "wake_at": 50.0}))
        await store.create_run(run_row(f"{run_id}-waits"))
        await store.write(Write(f"{run_id}-waits", 5.0, run={"status": "suspended", "wait_event": "go"}))
        await store.add_signal(f"{run_id}-waits", "go", "null", 6.0)
    assert await a.running_runs() == ["a1"]
    assert await b.due_runs(100.0) == [("b1-sleeps", 50.0)]
    assert await a.next_wake_after(0.0) == 50.0
    assert await b.runs_with_signals() == ["b1-waits"]
    assert sorted(await everyone.running_runs()) == ["a1", "b1"]
    assert len(await everyone.due_runs(100.0)) == 2
    assert sorted(await everyone.runs_with_signals()) == ["a1-waits", "b1-waits"]
    assert owners(postgres_url)["a1"] == "a"


def test_two_workers_claiming_at_once_never_get_the_same_run(postgres_url: str, stores: Stores) -> None:
    client = stores(postgres_url)
    for i in range(200):
        client.client_trigger(run_row(f"r{i:03d}"))
    workers = {name: stores(postgres_url, name) for name in ("a", "b")}
    claimed: dict[str, list[str]] = {name: [] for name in workers}
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def claim(name: str) -> None:
        try:
            start.wait()
            while True:
                got = [c.run_id for c in workers[name].changes_after(0, 7) if c.kind == "claim"]
                if not got:
                    return
                claimed[name].extend(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(name,)) for name in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    a, b = set(claimed["a"]), set(claimed["b"])
    assert len(a) == len(claimed["a"])
    assert len(b) == len(claimed["b"])
    assert not a & b  # no run went to both
    assert a | b == {f"r{i:03d}" for i in range(200)}
    assert a
    assert b
    stored = owners(postgres_url)
    assert all(stored[run_id] == "a" for run_id in a)
    assert all(stored[run_id] == "b" for run_id in b)
    assert client.engine_counts().pending_changes == 0  # the claims covered the triggers


def test_a_dead_workers_runs_are_claimed_once_its_lease_expires(postgres_url: str, stores: Stores) -> None:
    a = stores(postgres_url, "a", ttl=0.5)
    b = stores(postgres_url, "b")
    a.client_trigger(run_row("r1"))
    assert [c.run_id for c in a.changes_after(0, 10)] == ["r1"]
    assert b.changes_after(0, 10) == []  # a is alive: its run stays its own
    time.sleep(0.6)
    assert [(c.kind, c.run_id) for c in b.changes_after(0, 10)] == [("claim", "r1")]
    # A worker that stops releases its lease: its runs are free at once.
    c = stores(postgres_url, "c")
    assert c.changes_after(0, 10) == []
    b.lease_release(b.lease_name("b"), "b", time.time())
    assert [change.run_id for change in c.changes_after(0, 10)] == ["r1"]


# -- clients' changes: outbox rows and NOTIFY ---------------------------------------------------


async def test_clients_changes_reach_the_runs_owner(postgres_url: str, stores: Stores) -> None:
    client = stores(postgres_url)
    worker = stores(postgres_url, "w")
    other = stores(postgres_url, "o")
    listener = await trio.to_thread.run_sync(lambda: psycopg.connect(postgres_url, autocommit=True))
    listener.execute("LISTEN tarry_changes")

    def sync(fn: Callable[..., Any], *args: Any) -> Any:
        return trio.to_thread.run_sync(fn, *args)

    row, created = await sync(client.client_trigger, run_row("r1"))
    assert created
    assert (await sync(client.engine_counts)).pending_changes == 1
    claimed = await sync(worker.changes_after, 0, 100)
    assert [(c.seq, c.kind, c.run_id) for c in claimed] == [(0, "claim", "r1")]
    assert claimed[0].run == row
    assert (await sync(client.engine_counts)).pending_changes == 0
    assert await sync(other.changes_after, 0, 100) == []  # w's run: nothing for o

    await worker.write(Write("r1", 5.0, run={"status": "suspended", "wait_event": "go"}))
    assert (await sync(client.settled, "r1"))[1]
    signal = await sync(client.client_signal, "r1", "go", '{"ok":true}', 6.0)
    assert not (await sync(client.settled, "r1"))[1]  # a change for the worker is pending
    changes = await sync(worker.changes_after, 0, 100)
    assert [(c.kind, c.run_id) for c in changes] == [("signal", "r1")]
    assert changes[0].seq > 0
    assert changes[0].signal == signal
    assert changes[0].run is not None
    assert changes[0].run.wait_event == "go"
    assert await sync(other.changes_after, 0, 100) == []
    last = changes[0].seq

    cancelled = await sync(cancel, client, "r1", "stop", 7.0)
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "stop")  # it was suspended
    changes = await sync(worker.changes_after, last, 100)
    assert [(c.kind, c.run is not None and c.run.status) for c in changes] == [("cancel", "cancelled")]
    assert (await sync(client.engine_counts)).pending_changes == 2
    await sync(worker.forget_changes, changes[0].seq)
    assert (await sync(client.engine_counts)).pending_changes == 0
    assert await sync(worker.last_change) == 0  # nothing left: max(seq) of what is there

    # A retry puts a failed run back to nobody's: any live worker claims it.
    await sync(client.client_trigger, run_row("r2"))
    assert [c.run_id for c in await sync(worker.changes_after, 0, 100)] == ["r2"]
    await worker.write(
        Write(
            "r2",
            9.0,
            run={"status": "failed", "error": '{"type": "X", "message": "no"}'},
            entries=[entry("r2", 0, "a"), entry("r2", 1, "b", status="failed"), entry("r2", 2, "c", status="failed")],
        )
    )
    retried = await sync(retry, client, "r2", 10.0)
    assert (retried.status, retried.attempt, retried.error) == ("running", 2, None)
    assert [e.step_id for e in (await client.history("r2"))[0]] == ["a"]
    assert owners(postgres_url)["r2"] is None
    assert [(c.kind, c.run_id) for c in await sync(other.changes_after, 0, 100)] == [("claim", "r2")]
    assert (await sync(client.engine_counts)).pending_changes == 0

    notices = await sync(lambda: [n.payload for n in listener.notifies(timeout=0.5)])
    listener.close()
    assert notices == ["trigger:r1", "signal:r1", "cancel:r1", "trigger:r2", "retry:r2"]


def test_a_notify_wakes_a_watch_within_100_ms(postgres_url: str, stores: Stores) -> None:
    client = stores(postgres_url)
    worker = stores(postgres_url, "w")
    watch = worker.watch(0.02)
    try:
        deadline = time.monotonic() + 2
        while not watch.wait(0.02):  # the first look (and the LISTEN) happen at once
            assert time.monotonic() < deadline
        committed: list[float] = []

        def trigger() -> None:
            client.client_trigger(run_row("r1"))
            committed.append(time.monotonic())

        timer = threading.Timer(0.1, trigger)
        timer.start()
        woke = None
        since = time.monotonic()
        while time.monotonic() - since < 0.45:  # before the half-second look comes due
            if watch.wait(0.02):
                woke = time.monotonic()
                break
        timer.join()
        assert woke is not None, "no notice"
        assert woke - committed[0] < 0.1
        # With no notice, the watch still says "look" about every half second (claims).
        since = time.monotonic()
        while not watch.wait(0.02):
            assert time.monotonic() - since < 1.0
    finally:
        watch.close()
    watch.close()  # idempotent


def test_a_change_that_commits_late_with_a_lower_seq_still_reaches_the_worker(
    postgres_url: str, stores: Stores
) -> None:
    slow_client = stores(postgres_url)
    fast_client = stores(postgres_url)
    worker = stores(postgres_url, "w")
    for run_id in ("r1", "r2", "r3", "r4"):
        slow_client.client_trigger(run_row(run_id))
    worker.changes_after(0, 100)  # w owns them all now
    # Rows other sessions hold locks on, so that the slow client's writer waits for them.
    holds_r3 = psycopg.connect(postgres_url)
    holds_r3.execute("SELECT 1 FROM tarry_runs WHERE run_id = 'r3' FOR UPDATE")
    holds_r4 = psycopg.connect(postgres_url)
    holds_r4.execute("SELECT 1 FROM tarry_runs WHERE run_id = 'r4' FOR UPDATE")
    threads = [
        # Batch 1 waits for r4. Batch 2 (queued meanwhile): the signal to r1 takes its seq,
        # then the cancel of r3 waits for r3's lock, which keeps batch 2 uncommitted.
        threading.Thread(target=cancel, args=(slow_client, "r4", "x", 1.0)),
        threading.Thread(target=slow_client.client_signal, args=("r1", "go", "1", 2.0)),
        threading.Thread(target=cancel, args=(slow_client, "r3", "x", 3.0)),
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.15)  # queued in this order
    holds_r4.rollback()  # batch 1 commits; batch 2 takes a seq for r1 and waits for r3
    time.sleep(0.3)
    fast_client.client_signal("r2", "go", "2", 4.0)  # commits now, with a higher seq
    seen = worker.changes_after(0, 100)
    last = max(c.seq for c in seen)
    worker.forget_changes(last)
    holds_r3.rollback()  # batch 2 commits: its r1 signal has a seq below `last`
    holds_r3.close()
    holds_r4.close()
    for thread in threads:
        thread.join(timeout=10)
    later = worker.changes_after(last, 100)
    delivered = {(c.kind, c.run_id) for c in seen + later}
    assert ("signal", "r2") in delivered
    assert ("signal", "r1") in delivered


def test_no_change_is_left_pending_for_ever(postgres_url: str, stores: Stores) -> None:
    client = stores(postgres_url)
    a = stores(postgres_url, "a")
    client.client_trigger(run_row("r1"))
    a.changes_after(0, 10)
    trio.run(a.write, Write("r1", 5.0, run={"status": "suspended", "wake_at": 500.0}))
    a.lease_release(a.lease_name("a"), "a", time.time())  # a stops
    cancel(client, "r1", "stop", 6.0)
    b = stores(postgres_url, "b")
    b.forget_changes(b.last_change())
    b.changes_after(0, 10)
    assert client.engine_counts().pending_changes == 0


async def test_a_plain_runtimes_signal_leaves_nothing_pending(postgres_url: str, stores: Stores) -> None:
    store = stores(postgres_url)  # no owner: a Runtime without a worker
    await store.create_run(run_row("r1"))
    await store.write(Write("r1", 5.0, run={"status": "suspended", "wait_event": "go"}))
    await store.add_signal("r1", "other", "null", 6.0)  # not what it waits for
    assert (await trio.to_thread.run_sync(store.settled, "r1"))[1]
    assert (await trio.to_thread.run_sync(store.engine_counts)).pending_changes == 0


def test_data_version_moves_with_every_commit(postgres_url: str, stores: Stores) -> None:
    reader = stores(postgres_url)
    writer = stores(postgres_url)
    seen = reader.data_version()
    for i in range(3):
        writer.client_trigger(run_row(f"r{i}"))
        now = reader.data_version()
        assert now != seen
        seen = now


# -- the schema, the URL and the errors -----------------------------------------------------------


def test_workers_starting_at_once_create_the_schema_once(postgres_url: str) -> None:
    sql(postgres_url, "CREATE TABLE runs (id int)")  # the app's own table of that name: left alone
    made = [PostgresStore(postgres_url) for _ in range(6)]
    errors: list[BaseException] = []

    def open_one(store: PostgresStore) -> None:
        try:
            store.open_sync()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(store,)) for store in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert not errors
        assert made[0].engine_counts().schema_version >= 1
        assert sql(postgres_url, "SELECT count(*) FROM runs") == [(0,)]
    finally:
        for store in made:
            store.close_sync()


def test_a_database_of_a_newer_tarry_is_refused_and_left_untouched(postgres_url: str, stores: Stores) -> None:
    stores(postgres_url).client_trigger(run_row("r1"))
    sql(postgres_url, "UPDATE tarry_meta SET value = '99' WHERE key = 'schema_version'")
    newer = PostgresStore(postgres_url)
    with pytest.raises(SchemaTooNew) as caught:
        newer.open_sync()
    assert (caught.value.details["found"], caught.value.details["supported"]) == (99, SCHEMA_VERSION)
    newer.close_sync()
    assert sql(postgres_url, "SELECT value FROM tarry_meta WHERE key = 'schema_version'") == [("99",)]
    assert sql(postgres_url, "SELECT run_id FROM tarry_runs") == [("r1",)]


def test_a_schema_6_database_gains_the_audit_trail_and_keeps_its_runs(postgres_url: str, stores: Stores) -> None:
    stores(postgres_url).client_trigger(run_row("r1"))
    # What schema 6 had: no sent_by, no traceparent, no tarry_audit.
    sql(postgres_url, "ALTER TABLE tarry_signals DROP COLUMN sent_by")
    sql(postgres_url, "ALTER TABLE tarry_runs DROP COLUMN traceparent")
    sql(postgres_url, "DROP TABLE tarry_audit")
    sql(postgres_url, "ALTER TABLE tarry_runs DROP COLUMN tags")  # schema 8's
    sql(postgres_url, "ALTER TABLE tarry_workflows DROP COLUMN tags")
    sql(postgres_url, "DROP INDEX tarry_runs_id_c")  # schema 9's
    sql(postgres_url, "UPDATE tarry_meta SET value = '6' WHERE key = 'schema_version'")
    sql(postgres_url, "INSERT INTO tarry_signals (run_id, event, payload, sent_at) VALUES ('r1', 'old', '1', 1.0)")

    store = stores(postgres_url)
    assert store.engine_counts().schema_version == SCHEMA_VERSION == 10
    assert sql(postgres_url, "SELECT indexname FROM pg_indexes WHERE indexname = 'tarry_runs_id_c'") == [
        ("tarry_runs_id_c",)
    ]
    store.client_signal("r1", "new", "2", 2.0, by="ana")
    store.client_transition("r1", lifecycle.cancel("done", 3.0, "bob"), announce="cancel", descendants=True)
    found = store.snapshot("r1")
    assert found is not None
    assert (found[0].status, found[0].traceparent) == ("running", None)
    assert [(s.event, s.sent_by) for s in found[2]] == [("old", None), ("new", "ana")]
    assert [(a.action, a.by, a.at) for a in store.audit_trail("r1")] == [("cancel", "bob", 3.0)]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_is_not_there_is_named_with_the_fix(postgres_url: str) -> None:
    port = _free_port()  # nothing listens there
    url = f"postgresql://tarry:s3cret@127.0.0.1:{port}/orders"
    store = PostgresStore(url, connect_timeout=2)
    assert store.url == url
    assert "s3cret" not in store.name
    with pytest.raises(StoreError) as caught:
        store.open_sync()
    message = caught.value.message
    assert "127.0.0.1" in message
    assert str(port) in message
    assert "orders" in message
    assert "s3cret" not in message
    assert "s3cret" not in str(caught.value.to_dict())
    assert "check that the server" in message  # the fix


def test_a_password_given_as_a_url_parameter_is_hidden_too() -> None:
    store = PostgresStore("postgresql://tarry@127.0.0.1:1/orders?password=s3cret")
    assert "s3cret" not in store.name


def test_engine_imports_without_psycopg_and_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import tarry, tarry.store\n"
        "try:\n"
        "    from tarry.store.postgres import PostgresStore\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "try:\n"
        "    tarry.store.store_from_url('postgresql://u@h/db')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines() == ["PostgresStore needs psycopg: pip install 'tarry[postgres]'"] * 2
