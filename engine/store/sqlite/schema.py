"""The schema of a tarry SQLite file, and how a file is checked and migrated when opened.

Versioned with ``PRAGMA user_version`` plus a ``tarry_migrations`` table recording each
named migration; migrations only ever append, each in one transaction with its
``tarry_migrations`` row. A file written by a newer tarry is refused (:class:`SchemaTooNew`)
and left untouched; a file that is not a tarry database (:class:`NotATarryDatabase`)
likewise. Declared through sqlite-utils, with raw SQL only where it cannot say it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import sqlite_utils
from sqlite_utils.db import Table

from ...errors import DatabaseCorrupt, NotATarryDatabase, SchemaTooNew
from .faults import store_error

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "prepare"]

#: ``PRAGMA application_id`` of every tarry database ("TARY").
APPLICATION_ID = 0x54415259


def _table(db: sqlite_utils.Database, name: str) -> Table:
    """``db[name]`` as a table: every name tarry uses is a table, never a view."""
    return db.table(name)


# -- migrations: append only; each runs in one transaction with its tarry_migrations row ----


def _m0001_initial(db: sqlite_utils.Database) -> None:
    _table(db, "runs").create(
        {
            "run_id": str,
            "workflow_id": str,
            "status": str,
            "payload": str,
            "created_at": float,
            "updated_at": float,
            "output": str,
            "error": str,
            "pending": str,
            "wake_at": float,
            "wait_event": str,
            "cancel_reason": str,
            "attempt": int,
        },
        pk="run_id",
        not_null={"workflow_id", "status", "payload", "created_at", "updated_at", "attempt"},
    )
    _table(db, "runs").create_index(["status", "wake_at"], index_name="runs_status_wake")
    _table(db, "runs").create_index(["created_at"], index_name="runs_created")
    _table(db, "runs").create_index(["status", "created_at"], index_name="runs_status_created")
    _table(db, "runs").create_index(["workflow_id", "created_at"], index_name="runs_workflow")
    # WITHOUT ROWID (which sqlite-utils' create() cannot declare): the journal is only ever
    # read by (run_id, seq), so the primary key is the table, one B-tree less per step
    # result (~25 % less per commit).
    db.execute(
        "CREATE TABLE entries ("
        "run_id TEXT NOT NULL REFERENCES runs(run_id), seq INTEGER NOT NULL, step_id TEXT NOT NULL, "
        "kind TEXT NOT NULL, status TEXT NOT NULL, started_at FLOAT NOT NULL, finished_at FLOAT, "
        "output TEXT, error TEXT, detail TEXT, attempts INTEGER NOT NULL, "
        "PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
    )
    _table(db, "entries").create_index(["run_id", "step_id"], unique=True, index_name="entries_step")
    _table(db, "signals").create(
        {
            "id": int,
            "run_id": str,
            "event": str,
            "payload": str,
            "sent_at": float,
            "consumed_at": float,
            "consumed_by": str,
        },
        pk="id",
        not_null={"run_id", "event", "payload", "sent_at"},
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    _table(db, "signals").create_index(["run_id", "consumed_at"], index_name="signals_inbox")
    _table(db, "tarry_leases").create(
        {"name": str, "owner": str, "acquired_at": float, "heartbeat_at": float, "expires_at": float, "info": str},
        pk="name",
    )


def _m0002_cross_process(db: sqlite_utils.Database) -> None:
    """The tables clients and the worker share (see :mod:`.statements`)."""
    # Raw SQL for AUTOINCREMENT, which sqlite-utils cannot declare: a seq must never be
    # handed out twice, even after the worker deleted every row it had processed.
    db.execute(
        "CREATE TABLE tarry_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
        "run_id TEXT NOT NULL, signal_id INTEGER, at FLOAT NOT NULL)"
    )
    _table(db, "tarry_outbox").create_index(["run_id"], index_name="tarry_outbox_run")
    _table(db, "tarry_workflows").create(
        {
            "id": str,
            "description": str,
            "schema_kind": str,
            "payload_schema": str,
            "published_at": float,
            "published_by": str,
        },
        pk="id",
        not_null={"schema_kind", "published_at"},
    )


def _m0003_lean_indexes(db: sqlite_utils.Database) -> None:
    """Fewer B-trees written per commit (each is a page more into the WAL; ~20 % of a
    one-run-at-a-time commit, measured with ``python -m bench --only steps``).

    - ``entries_step`` goes: a step id is checked unique in the run by the context before
      anything is written (:class:`DuplicateStepId`), the journal is read by ``seq`` only,
      and with ``INSERT OR REPLACE`` a unique index would have silently deleted the other
      row instead of failing.
    - ``runs_status_wake`` becomes partial, holding suspended runs only: creating, running
      and ending a run no longer writes it. ``due_runs`` and ``next_wake_after`` query
      ``status = 'suspended'``, so SQLite still picks it.
    """
    db.execute("DROP INDEX IF EXISTS entries_step")
    db.execute("DROP INDEX IF EXISTS runs_status_wake")
    # Raw SQL: sqlite-utils' create_index cannot declare a partial index.
    db.execute("CREATE INDEX runs_suspended_wake ON runs(status, wake_at) WHERE status = 'suspended'")


def _m0004_child_runs(db: sqlite_utils.Database) -> None:
    """``runs.parent_run_id``: the run that started this one with ``ctx.child`` (NULL for
    the rest; adding a nullable column rewrites no row)."""
    _table(db, "runs").add_column("parent_run_id", str)


def _m0005_signal_dedup(db: sqlite_utils.Database) -> None:
    """``signals.dedup_key``: a signal sent twice under one key is stored once, for the
    run's lifetime (a partial unique index: keyless signals cost it nothing)."""
    _table(db, "signals").add_column("dedup_key", str)
    # Raw SQL: sqlite-utils' create_index cannot declare a partial index.
    db.execute("CREATE UNIQUE INDEX signals_dedup ON signals(run_id, dedup_key) WHERE dedup_key IS NOT NULL")


def _m0006_forks(db: sqlite_utils.Database) -> None:
    """``runs.forked_from``: the run that ``retry(run_id, from_step=...)`` copied a new run from."""
    _table(db, "runs").add_column("forked_from", str)


def _m0007_published_schedules(db: sqlite_utils.Database) -> None:
    """``tarry_workflows.schedule``: the published registry says which workflows run by
    themselves, for clients and the dashboard."""
    _table(db, "tarry_workflows").add_column("schedule", str)


def _m0008_recoveries(db: sqlite_utils.Database) -> None:
    """``runs.recoveries`` and ``runs.recovery_mark``: how often recovery picked a run up
    without it getting past journal mark ``recovery_mark`` (a poison run is quarantined)."""
    _table(db, "runs").add_column("recoveries", int, not_null_default=0)
    _table(db, "runs").add_column("recovery_mark", int)


def _m0009_audit_traces(db: sqlite_utils.Database) -> None:
    """Who sent what: ``signals.sent_by``, and ``tarry_audit``, one row per trigger, cancel
    and retry a person or program asked for (``who``, ``at``, ``detail``); and
    ``runs.traceparent``, the trace a run's spans join (nullable columns: no row rewritten)."""
    _table(db, "signals").add_column("sent_by", str)
    _table(db, "runs").add_column("traceparent", str)
    _table(db, "tarry_audit").create(
        {"id": int, "run_id": str, "action": str, "who": str, "at": float, "detail": str},
        pk="id",
        not_null={"run_id", "action", "who", "at"},
    )
    _table(db, "tarry_audit").create_index(["run_id", "id"], index_name="tarry_audit_run")


def _m0010_run_tags(db: sqlite_utils.Database) -> None:
    """``runs.tags``: the workflow's tags when the run was created, ``",a,b,"`` (see
    ``journal.encode_tags``); NULL for none and for every run created before. And
    ``tarry_workflows.tags``: the published registry's, for clients without the code."""
    _table(db, "runs").add_column("tags", str)
    _table(db, "tarry_workflows").add_column("tags", str)


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0002_cross_process", _m0002_cross_process),
    ("0003_lean_indexes", _m0003_lean_indexes),
    ("0004_child_runs", _m0004_child_runs),
    ("0005_signal_dedup", _m0005_signal_dedup),
    ("0006_forks", _m0006_forks),
    ("0007_published_schedules", _m0007_published_schedules),
    ("0008_recoveries", _m0008_recoveries),
    ("0009_audit_traces", _m0009_audit_traces),
    ("0010_run_tags", _m0010_run_tags),
]
SCHEMA_VERSION = len(MIGRATIONS)


def check_intact(conn: sqlite3.Connection, path: str) -> None:
    """Raise :class:`DatabaseCorrupt` unless ``PRAGMA quick_check`` passes: every page
    readable and well-formed (indexes are not compared with their tables: that is
    ``integrity_check``, three times slower). It reads the whole file: ~50 ms for 100,000
    runs (46 MB), paid once per open, so that a damaged file is refused at start instead
    of failing some later read or write."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        raise DatabaseCorrupt(path, str(exc)) from None
    if problems != ["ok"]:
        found = " ".join(" ".join(problems).replace("*** in database main ***", "").split())  # one line
        raise DatabaseCorrupt(path, f"quick_check: {found[:160]}{'...' if len(found) > 160 else ''}")


def prepare(conn: sqlite3.Connection, path: str) -> None:
    """Check what the file is, switch to WAL, and apply pending migrations.

    Raises:
        NotATarryDatabase: not a SQLite file, or one another program made.
        SchemaTooNew: written by a newer tarry (nothing is changed).
        DatabaseCorrupt: a tarry database that fails ``PRAGMA quick_check``.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        error = store_error(path, exc)
        raise (error if isinstance(error, DatabaseCorrupt) else NotATarryDatabase(path, str(exc))) from None
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
        raise NotATarryDatabase(path, f"application_id {app_id:#x}, tables: {', '.join(sorted(tables)) or 'none'}")
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(path, version, SCHEMA_VERSION)
    if version:
        check_intact(conn, path)
    # WAL is persistent in the file; only switch when needed (idempotent, like sqlite-utils).
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = wal")
    db = sqlite_utils.Database(conn)
    for number, (name, migrate) in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
            conn.execute("COMMIT")  # another process applied it since we looked
            continue
        try:
            migrations = _table(db, "tarry_migrations")
            if not migrations.exists():
                migrations.create({"name": str, "applied_at": float}, pk="name")
            migrate(db)
            migrations.insert({"name": name, "applied_at": time.time()})
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
