"""The SQL of :class:`SQLiteStore`: every statement, as a function of a connection.

Writes run inside the committer's transaction (:mod:`.committer`), reads on a reader's
connection in a worker thread; none of them commits or begins a write transaction itself.
What other processes share through the file (the outbox clients write with each change,
the leases, the published registry) is here too:

``tarry_outbox``
    One row per change a client commits (``trigger``, ``signal``, ``cancel``, ``retry``),
    written in the same transaction as the change itself. ``seq`` is AUTOINCREMENT, so it
    never goes back even after rows are deleted: the worker reads the rows after the last
    ``seq`` it processed, acts on them and deletes them.
``tarry_leases``
    The row ``name="worker"`` says which worker serves the file, until when
    (``expires_at``), and how to wake it (``info["wake"]``: a unix datagram socket).
``tarry_workflows``
    The workflows the serving worker registered (id, description, payload JSON Schema).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ...errors import RunAlreadyExists, RunFinished, RunNotFound, RunStateError
from ...journal import (
    TERMINAL,
    AuditRow,
    EntryRow,
    Plan,
    RunRow,
    RunTree,
    SignalRow,
    Write,
    decode_tags,
    descendant_range,
    descendants_of,
    encode_tags,
    prefix_range,
    same_signal,
    tag_pattern,
)
from ..base import Change, EngineCounts, LeaseRow, PublishedWorkflow

#: The lease every worker of a SQLite database competes for.
LEASE_NAME = "worker"

RUN_COLUMNS = (
    "run_id, workflow_id, status, payload, created_at, updated_at, output, error, pending, "
    "wake_at, wait_event, cancel_reason, attempt"
)
#: What a read returns: the stored columns, with ``updated_at`` and ``last_step`` taken from
#: the latest journal entry when it is newer. Step writes touch only ``entries``: updating
#: the run's row as well costs ~45 us more per commit (another page into the WAL).
_LATEST = "(SELECT {} FROM entries e WHERE e.run_id = runs.run_id ORDER BY e.seq DESC LIMIT 1)"
RUN_SELECT = (
    "run_id, workflow_id, status, payload, created_at, "
    f"max(updated_at, coalesce({_LATEST.format('coalesce(e.finished_at, e.started_at)')}, 0)), "
    "output, error, pending, wake_at, wait_event, cancel_reason, attempt, "
    f"{_LATEST.format('e.step_id')}, parent_run_id, forked_from, recoveries, recovery_mark, traceparent, tags"
)
ENTRY_COLUMNS = "run_id, seq, step_id, kind, status, started_at, finished_at, output, error, detail, attempts"
SIGNAL_COLUMNS = "id, run_id, event, payload, sent_at, consumed_at, consumed_by, sent_by"
AUDIT_COLUMNS = "run_id, action, who, at, detail"
#: Columns of ``runs`` that a :class:`Write` may change.
WRITABLE_RUN_COLUMNS = frozenset(
    {"status", "output", "error", "pending", "wake_at", "wait_event", "cancel_reason", "attempt"}
    | {"recoveries", "recovery_mark"}
)


# -- runs, journals and inboxes ----------------------------------------------------------------


def create_run(
    conn: sqlite3.Connection, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
) -> tuple[RunRow, bool]:
    """Insert a run (with ``journal``, a fork's copied entries, and ``audit``, who asked
    for it, in the same transaction)."""
    # Insert first and look only on a conflict: a new run (the usual case) costs no read.
    inserted = conn.execute(
        f"INSERT INTO runs ({RUN_COLUMNS}, parent_run_id, forked_from, traceparent, tags) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (run_id) DO NOTHING",
        (
            row.run_id,
            row.workflow_id,
            row.status,
            row.payload,
            row.created_at,
            row.updated_at,
            row.output,
            row.error,
            row.pending,
            row.wake_at,
            row.wait_event,
            row.cancel_reason,
            row.attempt,
            row.parent_run_id,
            row.forked_from,
            row.traceparent,
            row.tags,
        ),
    ).rowcount
    if inserted:
        if journal:
            insert_entries(conn, entry_rows(journal), row.run_id)
        if audit is not None:
            insert_audit(conn, [audit])
        return row, True
    existing = get_run(conn, row.run_id)
    assert existing is not None  # the conflict was on this run_id, in this transaction
    if existing.workflow_id != row.workflow_id:
        raise RunAlreadyExists(row.run_id, existing.workflow_id)
    return existing, False


def write(conn: sqlite3.Connection, write: Write, *, announce: bool = False) -> bool:
    """Apply ``write``; ``False`` when its ``require`` did not hold. ``announce``: a
    signal it sends to another run gets a change row (a client's transition, whose
    recipient's worker must hear of it)."""
    if write.delete:
        status = run_status(conn, write.run_id)
        if write.require is not None and status not in write.require:
            return False
        delete_runs(conn, [write.run_id], keep_audit=True)
        if write.audit:
            insert_audit(conn, write.audit)
        return True
    if not only_entries(write):
        columns = ["updated_at = ?"]
        values: list[Any] = [write.updated_at]
        for column, value in write.run.items():
            if column not in WRITABLE_RUN_COLUMNS:
                raise ValueError(f"runs.{column} cannot be written")
            columns.append(f"{column} = ?")
            values.append(value)
        sql = f"UPDATE runs SET {', '.join(columns)} WHERE run_id = ?"
        values.append(write.run_id)
        if write.require is not None:
            sql += f" AND status IN ({','.join('?' * len(write.require))})"
            values.extend(sorted(write.require))
        if conn.execute(sql, values).rowcount == 0:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (write.run_id,)).fetchone() is None:
                raise RunNotFound(write.run_id)
            return False
    for signal_id, step_id in write.consume:
        taken = conn.execute(
            "UPDATE signals SET consumed_at = ?, consumed_by = ? WHERE id = ? AND run_id = ? AND consumed_at IS NULL",
            (write.updated_at, step_id, signal_id, write.run_id),
        ).rowcount
        if taken == 0:
            raise RunStateError(f"signal {signal_id} of run {write.run_id!r} was already consumed", run_id=write.run_id)
    if write.truncate_from is not None:
        conn.execute("DELETE FROM entries WHERE run_id = ? AND seq >= ?", (write.run_id, write.truncate_from))
    if write.entries:
        insert_entries(conn, entry_rows(write.entries), write.run_id)
    for target, event, payload in write.signals:
        # To a run of this database's one worker (a child's parent): no outbox row needed;
        # a parent that ended or was pruned meanwhile gets nothing.
        cursor = conn.execute(
            "INSERT INTO signals (run_id, event, payload, sent_at) SELECT ?, ?, ?, ? "
            f"WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ? AND status NOT IN {_TERMINAL_SQL})",
            (target, event, payload, write.updated_at, target),
        )
        if announce and cursor.rowcount:
            notify(conn, "signal", target, write.updated_at, cursor.lastrowid)
    if write.audit:
        insert_audit(conn, write.audit)
    return True


def insert_audit(conn: sqlite3.Connection, rows: list[AuditRow]) -> None:
    conn.executemany(
        f"INSERT INTO tarry_audit ({AUDIT_COLUMNS}) VALUES (?,?,?,?,?)",
        [(a.run_id, a.action, a.by, a.at, a.detail) for a in rows],
    )


def audit(conn: sqlite3.Connection, run_id: str) -> list[AuditRow]:
    """Who asked for what of a run, oldest first."""
    return [
        AuditRow(*r)
        for r in conn.execute(f"SELECT {AUDIT_COLUMNS} FROM tarry_audit WHERE run_id = ? ORDER BY id", (run_id,))
    ]


_TERMINAL_SQL = "('completed', 'failed', 'cancelled')"


def only_entries(write: Write) -> bool:
    """A step result alone: nothing but journal rows (the run's row is left as it is)."""
    return not (
        write.run
        or write.require is not None
        or write.consume
        or write.truncate_from is not None
        or write.signals
        or write.delete
        or write.audit
    )


def entry_rows(entries: list[EntryRow]) -> list[tuple[Any, ...]]:
    return [
        (
            e.run_id,
            e.seq,
            e.step_id,
            e.kind,
            e.status,
            e.started_at,
            e.finished_at,
            e.output,
            e.error,
            e.detail,
            e.attempts,
        )
        for e in entries
    ]


INSERT_ENTRIES = f"INSERT OR REPLACE INTO entries ({ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"


def insert_entries(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], run_id: str) -> None:
    try:
        conn.executemany(INSERT_ENTRIES, rows)
    except sqlite3.IntegrityError as exc:
        if "FOREIGN KEY" in str(exc):  # the journal of a run that does not exist
            raise RunNotFound(run_id) from None
        raise


def insert_entry_writes(conn: sqlite3.Connection, writes: list[Write]) -> None:
    """Many step results of many runs in one statement (the group-commit fast path)."""
    rows = [row for w in writes for row in entry_rows(w.entries)]
    insert_entries(conn, rows, writes[0].run_id if len(writes) == 1 else "(one of a batch)")


def run_status(conn: sqlite3.Connection, run_id: str) -> str:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFound(run_id)
    return str(row[0])


def add_signal(
    conn: sqlite3.Connection,
    run_id: str,
    event: str,
    payload: str,
    sent_at: float,
    dedup_key: str | None = None,
    by: str | None = None,
) -> SignalRow:
    if dedup_key is not None:
        found = conn.execute(
            f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? AND dedup_key = ?", (run_id, dedup_key)
        ).fetchone()
        if found is not None:
            return same_signal(SignalRow(*found), event, payload, dedup_key)
    found = conn.execute("SELECT status, wait_event FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if found is None:
        raise RunNotFound(run_id)
    status, waits_for = found
    if status in TERMINAL:
        raise RunFinished(run_id, status, "signal")
    cursor = conn.execute(
        "INSERT INTO signals (run_id, event, payload, sent_at, dedup_key, sent_by) VALUES (?,?,?,?,?,?)",
        (run_id, event, payload, sent_at, dedup_key, by),
    )
    return SignalRow(int(cursor.lastrowid or 0), run_id, event, payload, sent_at, sent_by=by, run_waits_for=waits_for)


def run_tree(conn: sqlite3.Connection, run_id: str, with_journal: bool, with_descendants: bool) -> RunTree:
    root = get_run(conn, run_id)
    if root is None:
        raise RunNotFound(run_id)
    tree = RunTree(root)
    if with_journal:
        tree.journal = journal(conn, run_id)
    if with_descendants:
        rows = conn.execute(f"SELECT {RUN_SELECT} FROM runs WHERE run_id >= ? AND run_id < ?", descendant_range(run_id))
        tree.descendants = descendants_of(run_id, (RunRow(*r) for r in rows))
    return tree


def transition(
    conn: sqlite3.Connection,
    run_id: str,
    plan: Plan,
    with_journal: bool,
    with_descendants: bool,
    announce: str | None = None,
) -> list[RunRow]:
    """See :meth:`tarry.store.base.Store.transition`; ``announce``: the change kind a
    client's transition leaves for the workers (``None`` from a runtime)."""
    writes = plan(run_tree(conn, run_id, with_journal, with_descendants))
    rows = []
    for change in writes:
        if not write(conn, change, announce=announce is not None):
            raise RunStateError(f"run {change.run_id!r} changed under a transition", run_id=change.run_id)
        if change.delete:
            continue  # nothing left to return or to announce
        if announce is not None:
            notify(conn, announce, change.run_id, change.updated_at)
        row = get_run(conn, change.run_id)
        assert row is not None
        rows.append(row)
    return rows


def get_run(conn: sqlite3.Connection, run_id: str) -> RunRow | None:
    row = conn.execute(f"SELECT {RUN_SELECT} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else RunRow(*row)


def journal(conn: sqlite3.Connection, run_id: str) -> list[EntryRow]:
    return [
        EntryRow(*r)
        for r in conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE run_id = ? ORDER BY seq", (run_id,))
    ]


def load(conn: sqlite3.Connection, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
    conn.execute("BEGIN")  # one snapshot for the three reads
    try:
        run = get_run(conn, run_id)
        if run is None:
            return None
        inbox = [
            SignalRow(*r)
            for r in conn.execute(
                f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? AND consumed_at IS NULL ORDER BY id", (run_id,)
            )
        ]
        return run, journal(conn, run_id), inbox
    finally:
        conn.execute("COMMIT")


def history(conn: sqlite3.Connection, run_id: str) -> tuple[list[EntryRow], list[SignalRow]]:
    conn.execute("BEGIN")
    try:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise RunNotFound(run_id)
        signals = [
            SignalRow(*r)
            for r in conn.execute(f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? ORDER BY id", (run_id,))
        ]
        return journal(conn, run_id), signals
    finally:
        conn.execute("COMMIT")


def run_filter(
    statuses: list[str] | None,
    workflow_id: str | None,
    search: str | None,
    waiting: str | None,
    tag: str | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause shared by listing and counting runs."""
    where: list[str] = []
    values: list[Any] = []
    if tag is not None:  # runs.tags is ",a,b,": see journal.encode_tags
        where.append("tags LIKE ? ESCAPE '\\'")
        values.append(tag_pattern(tag))
    if statuses is not None:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        values.extend(statuses)
    if workflow_id is not None:
        where.append("workflow_id = ?")
        values.append(workflow_id)
    if waiting == "event":
        where.append("status = 'suspended' AND wait_event IS NOT NULL")
    elif waiting == "sleep":
        where.append("status = 'suspended' AND wait_event IS NULL")
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(run_id LIKE ? ESCAPE '\\' OR workflow_id LIKE ? ESCAPE '\\' OR payload LIKE ? ESCAPE '\\')")
        values.extend([pattern] * 3)
    return (" WHERE " + " AND ".join(where)) if where else "", values


def list_runs(
    conn: sqlite3.Connection,
    statuses: list[str] | None,
    workflow_id: str | None,
    limit: int | None,
    offset: int,
    search: str | None = None,
    waiting: str | None = None,
    oldest_first: bool = False,
    tag: str | None = None,
) -> list[RunRow]:
    """Runs newest first (``oldest_first``: the longest unchanged first, as for a queue of
    waits), filtered by status, workflow, kind of wait and a search substring of the run id,
    workflow id or payload text."""
    where, values = run_filter(statuses, workflow_id, search, waiting, tag)
    order = "updated_at ASC, run_id ASC" if oldest_first else "created_at DESC, run_id DESC"
    sql = f"SELECT {RUN_SELECT} FROM runs{where} ORDER BY {order} LIMIT ? OFFSET ?"
    values.extend([-1 if limit is None else limit, offset])
    return [RunRow(*r) for r in conn.execute(sql, values)]


def count_runs(
    conn: sqlite3.Connection,
    statuses: list[str] | None,
    workflow_id: str | None,
    search: str | None = None,
    waiting: str | None = None,
    tag: str | None = None,
) -> int:
    where, values = run_filter(statuses, workflow_id, search, waiting, tag)
    return int(conn.execute(f"SELECT count(*) FROM runs{where}", values).fetchone()[0])


def count_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status"))


def due_runs(conn: sqlite3.Connection, until: float, limit: int) -> list[tuple[str, float]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT run_id, wake_at FROM runs WHERE status = 'suspended' AND wake_at <= ? ORDER BY wake_at LIMIT ?",
            (until, limit),
        )
    ]


def next_wake_after(conn: sqlite3.Connection, after: float) -> float | None:
    row = conn.execute("SELECT min(wake_at) FROM runs WHERE status = 'suspended' AND wake_at > ?", (after,)).fetchone()
    return None if row[0] is None else float(row[0])


#: Whether signal ``s`` is one that suspended run ``r`` waits for: its one event, or one of
#: the names a multi-event wait joined with ``\x1f``.
WAITED_FOR = (
    "(s.event = r.wait_event OR instr(char(31) || r.wait_event || char(31), char(31) || s.event || char(31)) > 0)"
)


def prune(conn: sqlite3.Connection, before: float, statuses: list[str], limit: int) -> int:
    """Delete up to ``limit`` ended runs last changed before ``before`` (oldest first),
    with their journals, signals and outbox rows (the caller's one transaction)."""
    ended = [s for s in statuses if s in TERMINAL]
    if not ended:
        return 0
    marks = ",".join("?" * len(ended))
    doomed = [
        r[0]
        for r in conn.execute(
            f"SELECT run_id FROM runs WHERE status IN ({marks}) AND updated_at < ? ORDER BY updated_at LIMIT ?",
            (*ended, before, limit),
        )
    ]
    delete_runs(conn, doomed)
    return len(doomed)


def delete_runs(conn: sqlite3.Connection, run_ids: list[str], *, keep_audit: bool = False) -> None:
    """Delete runs with their journals, signals, outbox rows and (unless ``keep_audit``:
    one run deleted on request) audit trails."""
    tables = ("entries", "signals", "tarry_outbox", *(() if keep_audit else ("tarry_audit",)), "runs")
    for table in tables:
        conn.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(run_id,) for run_id in run_ids])


def runs_with_signals(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT r.run_id FROM runs r WHERE r.status = 'suspended' AND r.wait_event IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM signals s WHERE s.run_id = r.run_id AND s.consumed_at IS NULL AND "
            f"{WAITED_FOR})"
        )
    ]


def running_runs(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT run_id FROM runs WHERE status = 'running'")]


# -- what processes share: clients' changes and their outbox rows, in one transaction ----------


def notify(conn: sqlite3.Connection, kind: str, run_id: str, at: float, signal_id: int | None = None) -> None:
    """The outbox row announcing a client's change, in the change's own transaction."""
    conn.execute(
        "INSERT INTO tarry_outbox (kind, run_id, signal_id, at) VALUES (?,?,?,?)", (kind, run_id, signal_id, at)
    )


def wake_address(conn: sqlite3.Connection, now: float) -> str | None:
    """The serving worker's wake socket, or ``None`` when no live worker published one."""
    row = conn.execute("SELECT info FROM tarry_leases WHERE name = ? AND expires_at > ?", (LEASE_NAME, now)).fetchone()
    if row is None or not row[0]:
        return None
    wake = orjson.loads(row[0]).get("wake")
    return wake if isinstance(wake, str) else None


def client_trigger(
    conn: sqlite3.Connection, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
) -> tuple[RunRow, bool]:
    stored, created = create_run(conn, row, journal, audit)
    if created:
        notify(conn, "trigger", row.run_id, row.created_at)
    return stored, created


def client_signal(
    conn: sqlite3.Connection,
    run_id: str,
    event: str,
    payload: str,
    sent_at: float,
    dedup_key: str | None = None,
    by: str | None = None,
) -> SignalRow:
    signal = add_signal(conn, run_id, event, payload, sent_at, dedup_key, by)
    if not signal.duplicate:
        notify(conn, "signal", run_id, sent_at, signal.id)
    return signal


# -- the worker: read what clients did, then forget it ------------------------------------------


def changes_after(conn: sqlite3.Connection, after: int, limit: int) -> list[Change]:
    """Outbox rows with ``seq > after``, oldest first, each with its signal and run row."""
    signal_columns = ", ".join(f"s.{c.strip()}" for c in SIGNAL_COLUMNS.split(","))
    run_columns = ", ".join(f"r.{c.strip()}" for c in RUN_COLUMNS.split(",")) + (
        ", NULL, r.parent_run_id, r.forked_from, r.recoveries, r.recovery_mark, r.traceparent, r.tags"
    )
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


def last_change(conn: sqlite3.Connection) -> int:
    """The highest ``seq`` ever handed out (0 for none)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'tarry_outbox'").fetchone()
    return int(row[0]) if row else 0


def forget_changes(conn: sqlite3.Connection, upto: int) -> int:
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
    ``payload_schema``, ``schedule``): it lists what the serving worker can run."""
    conn.execute("DELETE FROM tarry_workflows")
    conn.executemany(
        "INSERT INTO tarry_workflows (id, description, schema_kind, payload_schema, published_at, published_by, "
        "schedule, tags) VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                w["id"],
                w.get("description"),
                w["schema_kind"],
                None if w.get("payload_schema") is None else orjson.dumps(w["payload_schema"]).decode(),
                now,
                owner,
                None if w.get("schedule") is None else orjson.dumps(w["schedule"]).decode(),
                encode_tags(tuple(w.get("tags") or ())),
            )
            for w in workflows
        ],
    )


def published_workflows(conn: sqlite3.Connection) -> list[PublishedWorkflow]:
    return [
        PublishedWorkflow(
            r[0],
            r[1],
            r[2],
            orjson.loads(r[3]) if r[3] else None,
            r[4],
            r[5],
            orjson.loads(r[6]) if r[6] else None,
            decode_tags(r[7]),
        )
        for r in conn.execute(
            "SELECT id, description, schema_kind, payload_schema, published_at, published_by, schedule, tags "
            "FROM tarry_workflows ORDER BY id"
        )
    ]


# -- client reads ----------------------------------------------------------------------------------


def snapshot(conn: sqlite3.Connection, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
    """A run, its journal and every signal, from one snapshot."""
    conn.execute("BEGIN")
    try:
        run = get_run(conn, run_id)
        if run is None:
            return None
        signals = [
            SignalRow(*r)
            for r in conn.execute(f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? ORDER BY id", (run_id,))
        ]
        return run, journal(conn, run_id), signals
    finally:
        conn.execute("COMMIT")


#: Run ids in ``[low, high)``; ``{below}`` is the upper bound's test, or nothing.
RUN_IDS_FROM = "SELECT run_id FROM runs WHERE run_id >= ?{below} ORDER BY run_id LIMIT ?"


def run_ids_with_prefix(conn: sqlite3.Connection, prefix: str, limit: int) -> list[str]:
    """Run ids starting with ``prefix``: a seek on the primary key (BINARY order)."""
    low, high = prefix_range(prefix)
    query = RUN_IDS_FROM.format(below="" if high is None else " AND run_id < ?")
    bounds = (low,) if high is None else (low, high)
    return [r[0] for r in conn.execute(query, (*bounds, limit)) if r[0].startswith(prefix)]


def run_info(
    conn: sqlite3.Connection, run_id: str
) -> tuple[RunRow, list[EntryRow], list[SignalRow], list[AuditRow]] | None:
    """A run, its journal, every signal and its audit trail, from one snapshot."""
    conn.execute("BEGIN")
    try:
        run = get_run(conn, run_id)
        if run is None:
            return None
        signals = [
            SignalRow(*r)
            for r in conn.execute(f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE run_id = ? ORDER BY id", (run_id,))
        ]
        return run, journal(conn, run_id), signals, audit(conn, run_id)
    finally:
        conn.execute("COMMIT")


def settled(conn: sqlite3.Connection, run_id: str) -> tuple[RunRow, bool]:
    """The run, and whether it is at rest: ended, or suspended with no change of a client
    still waiting for the worker (an outbox row, or a signal its wait would take)."""
    conn.execute("BEGIN")
    try:
        run = get_run(conn, run_id)
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
                "SELECT 1 FROM signals s, runs r WHERE s.run_id = ? AND r.run_id = s.run_id AND s.consumed_at IS NULL "
                f"AND {WAITED_FOR} LIMIT 1",
                (run_id,),
            ).fetchone()
        ):
            return run, False
        return run, True
    finally:
        conn.execute("COMMIT")


def engine_counts(conn: sqlite3.Connection) -> EngineCounts:
    """Runs per status, outbox rows not yet processed, and the schema version."""
    conn.execute("BEGIN")
    try:
        counts = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        backlog = conn.execute("SELECT count(*) FROM tarry_outbox").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return EngineCounts(counts, int(backlog), int(version))
    finally:
        conn.execute("COMMIT")


def leases(conn: sqlite3.Connection) -> list[LeaseRow]:
    return [
        _lease_row(r)
        for r in conn.execute(
            "SELECT name, owner, acquired_at, heartbeat_at, expires_at, info FROM tarry_leases ORDER BY heartbeat_at DESC"
        )
    ]
