"""SQLite statements for what processes share through the database file.

A database has one worker (the process that runs workflows) and any number of clients
(``engine.Client``: a CLI, a web app, the dashboard). They meet only in the file:

``tarry_outbox``
    One row per change a client commits (``trigger``, ``signal``, ``cancel``, ``retry``),
    written in the same transaction as the change itself. ``seq`` is AUTOINCREMENT, so it
    never goes back even after rows are deleted: the worker reads the rows after the last
    ``seq`` it processed, acts on them and deletes them. The database stays the source of
    truth: a change whose outbox row was lost (it cannot be) would still be found by the
    next recovery.
``tarry_leases``
    The row ``name="worker"`` says which worker serves the file, until when
    (``expires_at``), and how to wake it (``info["wake"]``: a unix datagram socket).
``tarry_workflows``
    The workflows the serving worker registered (id, description, payload JSON Schema),
    published when it takes the lease, so that a client without the code can validate.

Each function takes a connection first and is run by :class:`SQLiteStore` (``submit`` /
``submit_sync`` inside the writer's transaction, ``read`` / ``read_sync`` on a reader).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import RunNotFound, RunNotRetryable, StoreError
from ..journal import TERMINAL, RunRow, SignalRow, Write
from .sqlite import (
    RUN_COLUMNS,
    SIGNAL_COLUMNS,
    _add_signal,
    _count_runs,
    _create_run,
    _entries,
    _get_run,
    _list_runs,
    _request_cancel,
    _write,
)

__all__ = [
    "LEASE_NAME",
    "Change",
    "DataVersion",
    "LeaseRow",
    "PublishedWorkflow",
]

#: The lease every worker of a database competes for.
LEASE_NAME = "worker"


@dataclass(slots=True)
class LeaseRow:
    name: str
    owner: str
    acquired_at: float
    heartbeat_at: float
    expires_at: float
    info: dict[str, Any]


@dataclass(slots=True)
class Change:
    """One outbox row, with the signal it announces and the run as they are now."""

    seq: int
    kind: str  # trigger | signal | cancel | retry
    run_id: str
    signal: SignalRow | None
    run: RunRow | None


@dataclass(slots=True)
class PublishedWorkflow:
    id: str
    description: str | None
    schema_kind: str
    payload_schema: dict[str, Any] | None
    published_at: float
    published_by: str | None


# -- clients: a change and its outbox row in one transaction ---------------------------------


def _notify(conn: sqlite3.Connection, kind: str, run_id: str, at: float, signal_id: int | None = None) -> str | None:
    conn.execute(
        "INSERT INTO tarry_outbox (kind, run_id, signal_id, at) VALUES (?,?,?,?)", (kind, run_id, signal_id, at)
    )
    return wake_address(conn, at)


def wake_address(conn: sqlite3.Connection, now: float) -> str | None:
    """The serving worker's wake socket, or ``None`` when no live worker published one."""
    row = conn.execute("SELECT info FROM tarry_leases WHERE name = ? AND expires_at > ?", (LEASE_NAME, now)).fetchone()
    if row is None or not row[0]:
        return None
    wake = orjson.loads(row[0]).get("wake")
    return wake if isinstance(wake, str) else None


def client_trigger(conn: sqlite3.Connection, row: RunRow) -> tuple[RunRow, bool, str | None]:
    stored, created = _create_run(conn, row)
    wake = _notify(conn, "trigger", row.run_id, row.created_at) if created else None
    return stored, created, wake


def client_signal(
    conn: sqlite3.Connection, run_id: str, event: str, payload: str, sent_at: float
) -> tuple[SignalRow, str | None]:
    signal = _add_signal(conn, run_id, event, payload, sent_at)
    return signal, _notify(conn, "signal", run_id, sent_at, signal.id)


def client_cancel(conn: sqlite3.Connection, run_id: str, reason: str, at: float) -> tuple[RunRow, str | None]:
    row = _request_cancel(conn, run_id, reason, at)
    return row, _notify(conn, "cancel", run_id, at)


def client_retry(conn: sqlite3.Connection, run_id: str, at: float) -> tuple[RunRow, str | None]:
    """What ``Runtime.retry`` writes: the failed run back to ``running``, its trailing failed
    entries dropped so that they run again, ``attempt`` + 1."""
    row = _get_run(conn, run_id)
    if row is None:
        raise RunNotFound(run_id)
    if row.status != "failed":
        raise RunNotRetryable(run_id, row.status)
    journal = _entries(conn, run_id)
    cut = len(journal)
    while cut > 0 and journal[cut - 1].status == "failed":
        cut -= 1
    run = {"status": "running", "error": None, "output": None, "attempt": row.attempt + 1, "cancel_reason": None}
    _write(conn, Write(run_id, at, run=run, truncate_from=cut, require=frozenset({"failed"})))
    updated = _get_run(conn, run_id)
    assert updated is not None
    return updated, _notify(conn, "retry", run_id, at)


# -- the worker: read what clients did, then forget it ------------------------------------------


def outbox_after(conn: sqlite3.Connection, after: int, limit: int) -> list[Change]:
    """Outbox rows with ``seq > after``, oldest first, each with its signal and run row."""
    signal_columns = ", ".join(f"s.{c.strip()}" for c in SIGNAL_COLUMNS.split(","))
    run_columns = ", ".join(f"r.{c.strip()}" for c in RUN_COLUMNS.split(","))
    n_signal = len(SIGNAL_COLUMNS.split(","))
    changes = []
    conn.execute("BEGIN")  # one snapshot
    try:
        rows = conn.execute(
            f"SELECT o.seq, o.kind, o.run_id, {signal_columns}, {run_columns} FROM tarry_outbox o "
            "LEFT JOIN signals s ON s.id = o.signal_id LEFT JOIN runs r ON r.run_id = o.run_id "
            "WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
            (after, limit),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    for r in rows:
        signal_values = r[3 : 3 + n_signal]
        run_values = r[3 + n_signal :]
        signal = SignalRow(*signal_values) if signal_values[0] is not None else None
        run = RunRow(*run_values) if run_values[0] is not None else None
        changes.append(Change(r[0], r[1], r[2], signal, run))
    return changes


def outbox_last(conn: sqlite3.Connection) -> int:
    """The highest ``seq`` ever handed out (0 for none)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'tarry_outbox'").fetchone()
    return int(row[0]) if row else 0


def outbox_delete(conn: sqlite3.Connection, upto: int) -> int:
    return conn.execute("DELETE FROM tarry_outbox WHERE seq <= ?", (upto,)).rowcount


# -- the lease --------------------------------------------------------------------------------


def _lease_row(row: Any) -> LeaseRow:
    return LeaseRow(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]) if row[5] else {})


def lease_get(conn: sqlite3.Connection, name: str = LEASE_NAME) -> LeaseRow | None:
    row = conn.execute(
        "SELECT name, owner, acquired_at, heartbeat_at, expires_at, info FROM tarry_leases WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else _lease_row(row)


def lease_acquire(
    conn: sqlite3.Connection, name: str, owner: str, now: float, ttl: float, info: dict[str, Any]
) -> tuple[bool, LeaseRow | None]:
    """Take the lease if it is free, expired or already ours. Returns ``(True, previous)``
    (the row it replaced, if any) or ``(False, holder)``."""
    current = lease_get(conn, name)
    if current is not None and current.owner != owner and current.expires_at > now:
        return False, current
    conn.execute(
        "INSERT INTO tarry_leases (name, owner, acquired_at, heartbeat_at, expires_at, info) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, acquired_at = excluded.acquired_at, "
        "heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at, info = excluded.info",
        (name, owner, now, now, now + ttl, orjson.dumps(info).decode()),
    )
    return True, current


def lease_renew(conn: sqlite3.Connection, name: str, owner: str, now: float, ttl: float) -> bool:
    """Extend our lease; ``False`` when it is no longer ours."""
    return (
        conn.execute(
            "UPDATE tarry_leases SET heartbeat_at = ?, expires_at = ? WHERE name = ? AND owner = ?",
            (now, now + ttl, name, owner),
        ).rowcount
        == 1
    )


def lease_release(conn: sqlite3.Connection, name: str, owner: str, now: float) -> bool:
    """Expire our lease now (a standby takes over at once); keep the row for ``engine_info``."""
    return (
        conn.execute(
            "UPDATE tarry_leases SET expires_at = ?, heartbeat_at = ? WHERE name = ? AND owner = ?",
            (now, now, name, owner),
        ).rowcount
        == 1
    )


def lease_holder(conn: sqlite3.Connection, name: str) -> str | None:
    """The fence check: who holds ``name`` (inside the writer's transaction)."""
    row = conn.execute("SELECT owner FROM tarry_leases WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


# -- the published registry ---------------------------------------------------------------------


def publish_workflows(conn: sqlite3.Connection, workflows: list[dict[str, Any]], owner: str, now: float) -> None:
    """Replace the registry with ``workflows`` (``id``, ``description``, ``schema_kind``,
    ``payload_schema``): it lists what the serving worker can run."""
    conn.execute("DELETE FROM tarry_workflows")
    conn.executemany(
        "INSERT INTO tarry_workflows (id, description, schema_kind, payload_schema, published_at, published_by) "
        "VALUES (?,?,?,?,?,?)",
        [
            (
                w["id"],
                w.get("description"),
                w["schema_kind"],
                None if w.get("payload_schema") is None else orjson.dumps(w["payload_schema"]).decode(),
                now,
                owner,
            )
            for w in workflows
        ],
    )


def published_workflows(conn: sqlite3.Connection) -> list[PublishedWorkflow]:
    return [
        PublishedWorkflow(r[0], r[1], r[2], orjson.loads(r[3]) if r[3] else None, r[4], r[5])
        for r in conn.execute(
            "SELECT id, description, schema_kind, payload_schema, published_at, published_by "
            "FROM tarry_workflows ORDER BY id"
        )
    ]


# -- client reads ----------------------------------------------------------------------------------


def get_run(conn: sqlite3.Connection, run_id: str) -> RunRow | None:
    return _get_run(conn, run_id)


def run_snapshot(conn: sqlite3.Connection, run_id: str) -> tuple[RunRow, list[Any], list[SignalRow]] | None:
    """A run, its journal and every signal, from one snapshot."""
    conn.execute("BEGIN")
    try:
        run = _get_run(conn, run_id)
        if run is None:
            return None
        signals = [
            SignalRow(*r)
            for r in conn.execute(f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? ORDER BY id", (run_id,))
        ]
        return run, _entries(conn, run_id), signals
    finally:
        conn.execute("COMMIT")


def settled(conn: sqlite3.Connection, run_id: str) -> tuple[RunRow, bool]:
    """The run, and whether it is at rest: ended, or suspended with no change of a client
    still waiting for the worker (an outbox row, or a signal its wait would take)."""
    conn.execute("BEGIN")
    try:
        run = _get_run(conn, run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status in TERMINAL:
            return run, True
        if run.status != "suspended":
            return run, False
        if conn.execute("SELECT 1 FROM tarry_outbox WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
            return run, False
        if (
            run.wait_event is not None
            and conn.execute(
                "SELECT 1 FROM signals WHERE run_id = ? AND consumed_at IS NULL AND event = ? LIMIT 1",
                (run_id, run.wait_event),
            ).fetchone()
        ):
            return run, False
        return run, True
    finally:
        conn.execute("COMMIT")


def engine_counts(conn: sqlite3.Connection) -> tuple[dict[str, int], int, int]:
    """Runs per status, outbox rows not yet processed, and the schema version."""
    conn.execute("BEGIN")
    try:
        counts = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        backlog = conn.execute("SELECT count(*) FROM tarry_outbox").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return counts, int(backlog), int(version)
    finally:
        conn.execute("COMMIT")


# -- change detection ------------------------------------------------------------------------------


class DataVersion:
    """``PRAGMA data_version`` on a connection of its own: a number that changes whenever
    another connection (of any process, this one's writer included) commits to the file.

    One connection, behind a lock, so that values from any thread compare: the pragma's
    value is per connection. Cheap (no I/O while nothing changed): UIs and the worker poll it.
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = 5.0) -> None:
        self._path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(
                        self._path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
                    )
                return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise StoreError(f"database {self._path!r}: {type(exc).__name__}: {exc}", path=self._path) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def list_runs(
    conn: sqlite3.Connection,
    statuses: list[str] | None,
    workflow_id: str | None,
    limit: int | None,
    offset: int,
    search: str | None,
    waiting: str | None = None,
    oldest_first: bool = False,
) -> list[RunRow]:
    """The store's listing (``engine.store.sqlite._list_runs``), for the Client."""
    return _list_runs(conn, statuses, workflow_id, limit, offset, search, waiting, oldest_first)


def count_runs(
    conn: sqlite3.Connection,
    statuses: list[str] | None,
    workflow_id: str | None,
    search: str | None,
    waiting: str | None,
) -> int:
    return _count_runs(conn, statuses, workflow_id, search, waiting)
