"""PostgresStore: journals on a PostgreSQL server, shared by any number of workers.

``pip install 'tarry[postgres]'`` (psycopg 3). Select it with a URL:
``tarry --db postgresql://user@host/db worker APP``, ``TARRY_DB``, ``Client(url)``, or
``create_runtime(store=PostgresStore(url))``.

Guarantees:

- **Committed means committed**, as PostgreSQL commits (``synchronous_commit`` is the
  server's: the default survives a crash of the server and of the machine).
- **Nothing on the event loop.** Writes are committed by one writer thread per store, in
  batches (group commit: what queued while the last batch committed goes into the next
  transaction; a failing write is undone alone by replaying its batch with a savepoint per
  write). Reads run in trio worker threads, four at most at once, each on its own
  connection. The trio loop only parks and wakes tasks.
- **Many workers, one owner per run.** Every run has an ``owner``: the worker that created
  it or claimed it. A worker claims, with ``FOR UPDATE SKIP LOCKED``, runs nobody owns (a
  Client's triggers and retries) and the runs of workers whose lease expired, so a run is
  never given to two workers. Every commit of a worker first checks, in its transaction,
  that its lease is current and that it owns the runs it writes (their rows locked ``FOR
  SHARE`` until the commit, so a claim waits for it): a worker that stalled past its lease
  commits nothing more, and learns so through :class:`LeaseLost`.
- **Clients' changes reach the owner.** A Client's change, its outbox row and a ``NOTIFY
  tarry_changes`` commit in one transaction; each worker ``LISTEN``s, and reads the outbox
  rows of the runs it owns. A notice lost (a dropped listening connection) costs latency:
  workers also look every half second.
- Tables live in the URL's database and default schema, each named ``tarry_*``; the
  schema version is kept in ``tarry_meta``. A database of a newer tarry is refused
  (:class:`SchemaTooNew`) and left untouched. Only JSON text is stored.

Times are epoch seconds from each process's wall clock: keep the machines' clocks in sync
(NTP) well within the lease's ttl.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import trio

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError as exc:  # pragma: no cover - exercised by users without the extra
    raise ImportError("PostgresStore needs psycopg: pip install 'tarry[postgres]'") from exc

import orjson

from ..errors import (
    LeaseLost,
    RunAlreadyExists,
    RunFinished,
    RunNotFound,
    RunStateError,
    SchemaTooNew,
    StoreBusy,
    StoreError,
    WorkflowError,
)
from ..journal import (
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
from .base import Change, ChangeWatch, EngineCounts, LeaseRow, PublishedWorkflow, SharedStore
from .queued import Op, deliver

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

log = logging.getLogger("tarry.store")

SCHEMA_VERSION = 10
CHANNEL = "tarry_changes"
#: Seconds between two looks at the claimable runs when no notice came (takeover's bound).
CLAIM_EVERY = 0.5
#: Expired leases older than this are deleted when a worker joins (they only feed engine_info).
FORGET_LEASES_AFTER = 3600.0

RUN_COLUMNS = (
    "run_id, workflow_id, status, payload, created_at, updated_at, output, error, pending, "
    "wake_at, wait_event, cancel_reason, attempt"
)
WRITABLE_RUN_COLUMNS = frozenset(
    {"status", "output", "error", "pending", "wake_at", "wait_event", "cancel_reason", "attempt"}
    | {"recoveries", "recovery_mark"}
)
#: A run as reads return it: ``updated_at`` and ``last_step`` from its latest journal entry
#: when that is newer (step results touch only the journal), as SQLiteStore does.
RUN_FIELDS = (
    "r.run_id, r.workflow_id, r.status, r.payload, r.created_at, "
    "greatest(r.updated_at, coalesce(e.at, 0)), r.output, r.error, r.pending, r.wake_at, r.wait_event, "
    "r.cancel_reason, r.attempt, e.step_id, r.parent_run_id, r.forked_from, r.recoveries, r.recovery_mark, "
    "r.traceparent, r.tags"
)
LATEST_ENTRY = (
    "LEFT JOIN LATERAL (SELECT coalesce(x.finished_at, x.started_at) AS at, x.step_id FROM tarry_entries x "
    "WHERE x.run_id = r.run_id ORDER BY x.seq DESC LIMIT 1) e ON true"
)
RUN_SELECT = f"{RUN_FIELDS} FROM tarry_runs r {LATEST_ENTRY}"
ENTRY_COLUMNS = "run_id, seq, step_id, kind, status, started_at, finished_at, output, error, detail, attempts"
SIGNAL_COLUMNS = "id, run_id, event, payload, sent_at, consumed_at, consumed_by, sent_by"
AUDIT_COLUMNS = "run_id, action, who, at, detail"
ACTIVE_SQL = "('running', 'suspended')"

_SCHEMA = [
    "CREATE TABLE tarry_meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE tarry_runs (run_id text PRIMARY KEY, workflow_id text NOT NULL, status text NOT NULL, "
    "payload text NOT NULL, created_at float8 NOT NULL, updated_at float8 NOT NULL, output text, error text, "
    "pending text, wake_at float8, wait_event text, cancel_reason text, attempt integer NOT NULL DEFAULT 0, "
    "owner text)",
    "CREATE INDEX tarry_runs_created ON tarry_runs (created_at)",
    "CREATE INDEX tarry_runs_status_created ON tarry_runs (status, created_at)",
    "CREATE INDEX tarry_runs_workflow ON tarry_runs (workflow_id, created_at)",
    # What a worker recovers and claims: its own unfinished runs, and the others' when they die.
    f"CREATE INDEX tarry_runs_active_owner ON tarry_runs (owner) WHERE status IN {ACTIVE_SQL}",
    "CREATE INDEX tarry_runs_suspended_wake ON tarry_runs (wake_at) WHERE status = 'suspended'",
    "CREATE TABLE tarry_entries (run_id text NOT NULL REFERENCES tarry_runs (run_id) ON DELETE CASCADE, "
    "seq integer NOT NULL, step_id text NOT NULL, kind text NOT NULL, status text NOT NULL, "
    "started_at float8 NOT NULL, finished_at float8, output text, error text, detail text, "
    "attempts integer NOT NULL, PRIMARY KEY (run_id, seq))",
    "CREATE TABLE tarry_signals (id bigserial PRIMARY KEY, run_id text NOT NULL REFERENCES tarry_runs (run_id) "
    "ON DELETE CASCADE, event text NOT NULL, payload text NOT NULL, sent_at float8 NOT NULL, "
    "consumed_at float8, consumed_by text)",
    "CREATE INDEX tarry_signals_inbox ON tarry_signals (run_id, id) WHERE consumed_at IS NULL",
    "CREATE INDEX tarry_signals_run ON tarry_signals (run_id, id)",
    "CREATE TABLE tarry_leases (name text PRIMARY KEY, owner text NOT NULL, acquired_at float8 NOT NULL, "
    "heartbeat_at float8 NOT NULL, expires_at float8 NOT NULL, info text)",
    "CREATE TABLE tarry_outbox (seq bigserial PRIMARY KEY, kind text NOT NULL, run_id text NOT NULL, "
    "signal_id bigint, at float8 NOT NULL)",
    "CREATE INDEX tarry_outbox_run ON tarry_outbox (run_id)",
    "CREATE TABLE tarry_workflows (id text NOT NULL, published_by text NOT NULL, description text, "
    "schema_kind text NOT NULL, payload_schema text, published_at float8 NOT NULL, PRIMARY KEY (id, published_by))",
]

#: Append only: version n's statements turn a version n-1 database into version n.
_MIGRATIONS: dict[int, list[str]] = {
    # The run that started this one with ctx.child (NULL for the rest; no row is rewritten).
    2: ["ALTER TABLE tarry_runs ADD COLUMN parent_run_id text"],
    # A signal sent twice under one key is stored once, for the run's lifetime.
    3: [
        "ALTER TABLE tarry_signals ADD COLUMN dedup_key text",
        "CREATE UNIQUE INDEX tarry_signals_dedup ON tarry_signals (run_id, dedup_key) WHERE dedup_key IS NOT NULL",
    ],
    # The run that retry(run_id, from_step=...) copied a new run from.
    4: ["ALTER TABLE tarry_runs ADD COLUMN forked_from text"],
    # The published registry says which workflows run by themselves.
    5: ["ALTER TABLE tarry_workflows ADD COLUMN schedule text"],
    # How often recovery picked a run up without it getting past a journal mark.
    6: [
        "ALTER TABLE tarry_runs ADD COLUMN recoveries integer NOT NULL DEFAULT 0",
        "ALTER TABLE tarry_runs ADD COLUMN recovery_mark integer",
    ],
    # Who sent each signal; who triggered, cancelled and retried each run; the trace a run joins.
    7: [
        "ALTER TABLE tarry_signals ADD COLUMN sent_by text",
        "ALTER TABLE tarry_runs ADD COLUMN traceparent text",
        "CREATE TABLE tarry_audit (id bigserial PRIMARY KEY, run_id text NOT NULL REFERENCES tarry_runs (run_id) "
        "ON DELETE CASCADE, action text NOT NULL, who text NOT NULL, at float8 NOT NULL, detail text)",
        "CREATE INDEX tarry_audit_run ON tarry_audit (run_id, id)",
    ],
    # The workflow's tags when the run was created, ",a,b," (see journal.encode_tags).
    # ... and the published registry's, for clients without the code.
    8: ["ALTER TABLE tarry_runs ADD COLUMN tags text", "ALTER TABLE tarry_workflows ADD COLUMN tags text"],
    # Run-id prefixes (the CLI's RUN): a range seek in code point order, whatever the collation.
    9: ['CREATE INDEX tarry_runs_id_c ON tarry_runs (run_id COLLATE "C")'],
    # A run's audit trail outlives the run when it is deleted on request (who deleted it).
    10: ["ALTER TABLE tarry_audit DROP CONSTRAINT IF EXISTS tarry_audit_run_id_fkey"],
}

_STOP = object()


def redact(url: str) -> str:
    """``url`` without its password (for names, logs and errors)."""
    url = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


class PostgresStore(SharedStore):
    """Runs, journals and signal inboxes on a PostgreSQL server.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (any libpq URL).
        busy_timeout: seconds a statement waits for a row lock before :class:`StoreBusy`.
        max_batch: the most writes committed in one transaction.
        readers: connections for reads (reads beyond that wait their turn).
        connect_timeout: seconds to reach the server before :class:`StoreError`.

    Raises (from :meth:`open`, which the runtime calls for you):
        StoreError: the server cannot be reached (the message names host, port and database).
        SchemaTooNew: the database was written by a newer tarry.
    """

    exclusive = False
    lease_ttl = 2.0

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 5.0,
        max_batch: int = 1024,
        readers: int = 4,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.name = f"postgresql:{redact(url).split('://', 1)[-1]}"
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.connect_timeout = connect_timeout
        self.commits = 0  # transactions committed (for benchmarks)
        self._owner: str | None = None
        self._on_lost: Callable[[], None] | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._open_lock = threading.Lock()
        self._pool: list[psycopg.Connection[Any]] = []
        self._pool_lock = threading.Lock()
        self._all_readers: list[psycopg.Connection[Any]] = []
        self._read_limiter = trio.CapacityLimiter(readers)
        self._read_slots = threading.BoundedSemaphore(readers)
        self._handed: set[int] = set()  # outbox rows changes_after gave out, not yet forgotten
        self._handed_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot reach PostgreSQL at {redact(self.url)!r}: {str(exc).strip()}; check that the server is up "
                "and that the URL (postgresql://user@host:port/database) names a database you may use",
                path=redact(self.url),
            ) from None
        conn.execute(f"SET lock_timeout = {int(self.busy_timeout * 1000)}")
        return conn

    def _map(self, exc: BaseException) -> BaseException:
        if isinstance(exc, WorkflowError) or not isinstance(exc, psycopg.Error):
            return exc
        if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
            return StoreBusy(redact(self.url), str(exc).strip())
        return StoreError(
            f"database {redact(self.url)!r}: {type(exc).__name__}: {str(exc).strip()}", path=redact(self.url)
        )

    # -- life cycle -------------------------------------------------------------------------

    def open_sync(self) -> None:
        """Check or create the schema and start the writer thread (what :meth:`open` does)."""
        with self._open_lock:
            if self._writer is not None:
                return
            conn = self._connect()
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
            self._writer = threading.Thread(target=self._writer_main, args=(conn,), name="tarry-pg-writer", daemon=True)
            self._writer.start()

    async def open(self) -> None:
        if self._writer is None:
            await trio.to_thread.run_sync(self.open_sync)

    def close_sync(self) -> None:
        with self._open_lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(_STOP)
                writer.join()
            with self._pool_lock:
                for conn in self._all_readers:
                    conn.close()
                self._all_readers.clear()
                self._pool.clear()

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.close_sync)

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Create the tables on a new database, or check the version of an existing one.
        Under an advisory lock, so that workers starting at once do it once."""
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('tarry-schema'))")
                exists = conn.execute("SELECT to_regclass('tarry_meta') IS NOT NULL").fetchone()
                if exists is not None and exists[0]:
                    row = conn.execute("SELECT value FROM tarry_meta WHERE key = 'schema_version'").fetchone()
                    version = int(row[0]) if row else 0
                    if version > SCHEMA_VERSION:
                        raise SchemaTooNew(redact(self.url), version, SCHEMA_VERSION)
                    if version < SCHEMA_VERSION:
                        self._migrate(conn, version)
                    return
                for statement in _SCHEMA:
                    conn.execute(statement)
                for version in sorted(_MIGRATIONS):
                    for statement in _MIGRATIONS[version]:
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO tarry_meta (key, value) VALUES ('schema_version', %s), ('created_at', %s)",
                    (str(SCHEMA_VERSION), str(time.time())),
                )
        except psycopg.Error as exc:
            raise self._map(exc) from None

    @staticmethod
    def _migrate(conn: psycopg.Connection[Any], version: int) -> None:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute("UPDATE tarry_meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    # -- the writer thread --------------------------------------------------------------------

    def _writer_main(self, conn: psycopg.Connection[Any]) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[Op] = [first]
                stop = False
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                conn = self._commit(conn, batch)
                deliver(batch)
                del batch, first
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: psycopg.Connection[Any], batch: list[Op]) -> psycopg.Connection[Any]:
        """Commit ``batch``: optimistic first, then a savepoint per write if one failed.
        Returns the connection to go on with (a new one if the old one broke)."""
        started, commits = time.perf_counter(), self.commits
        try:
            if not self._run_batch(conn, batch, savepoints=False):
                self._run_batch(conn, batch, savepoints=True)
            if self.commits != commits:
                self.committed(len(batch), time.perf_counter() - started)
        except psycopg.OperationalError as exc:  # the connection broke: fail the batch, reconnect
            error = self._map(exc)
            for op in batch:
                if op.error is None:
                    op.result, op.error = None, error
            conn.close()
            try:
                conn = self._connect()
            except StoreError as again:
                log.error("%s", again.message)
        return conn

    def _run_batch(self, conn: psycopg.Connection[Any], batch: list[Op], *, savepoints: bool) -> bool:
        conn.execute("BEGIN")
        try:
            mine = self._fence(conn, batch)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if mine is None:  # the lease is gone: nothing of this batch commits
            conn.execute("ROLLBACK")
            return True
        for op in batch:
            op.result = op.error = None
            run_id = _fenced_run(op)
            if run_id is not None and mine.get(run_id, self._owner) != self._owner:
                # Another worker's run (this worker's own lease is current: it was checked
                # above, and a lease that ran out is never renewed). Refused, and this
                # worker goes on: its runtime never drives such a run (see _load).
                op.error = LeaseLost(redact(self.url), self._owner or "", mine.get(run_id))
                continue
            if savepoints:
                conn.execute("SAVEPOINT w")
            try:
                op.result = op.fn(self, conn, *op.args)
            except Exception as exc:
                if not savepoints:
                    conn.execute("ROLLBACK")
                    return False
                op.error = self._map(exc)
                conn.execute("ROLLBACK TO SAVEPOINT w")
            if savepoints:
                conn.execute("RELEASE SAVEPOINT w")
        try:
            conn.execute("COMMIT")
            self.commits += 1
        except psycopg.Error as exc:
            error = self._map(exc)
            for op in batch:
                if op.error is None:
                    op.result, op.error = None, error
        return True

    def _lost(self) -> None:
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost()

    def _fence(self, conn: psycopg.Connection[Any], batch: list[Op]) -> dict[str, str | None] | None:
        """With an owner: check its lease (``None`` when it is gone: every op fails with
        :class:`LeaseLost` and ``on_lost`` is called once), then lock the rows of the runs
        the batch writes and say who owns each. Without an owner: nothing to check."""
        owner = self._owner
        if owner is None:
            return {}
        now = time.time()
        row = conn.execute(
            "SELECT expires_at FROM tarry_leases WHERE name = %s AND owner = %s", (self.lease_name(owner), owner)
        ).fetchone()
        if row is None or row[0] <= now:
            error = LeaseLost(redact(self.url), owner, None)
            for op in batch:
                op.error = error
            self._lost()
            return None
        run_ids = sorted({run_id for op in batch if (run_id := _fenced_run(op)) is not None})
        if not run_ids:
            return {}
        return dict(
            conn.execute(
                "SELECT run_id, owner FROM tarry_runs WHERE run_id = ANY(%s) ORDER BY run_id FOR SHARE", (run_ids,)
            ).fetchall()
        )

    # -- submitting ---------------------------------------------------------------------------

    async def _submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._writer is None:
            await self.open()
        op = Op(fn, args, trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
        self._queue.put(op)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if op.fn is _create_run:
                # All or nothing: a create already queued is waited for, so that a cancelled
                # trigger never leaves a run that nobody drives.
                return trio.lowlevel.Abort.FAILED
            op.waiter = None  # cancelled while waiting: the write still commits (or fails) alone
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if op.error is not None:
            raise op.error
        return op.result

    def _submit_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.open_sync()
        op = Op(fn, args, None, threading.Event())
        self._queue.put(op)
        op.waiter.wait()
        if op.error is not None:
            raise op.error
        return op.result

    def _read_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.open_sync()
        with self._read_slots:
            with self._pool_lock:
                conn = self._pool.pop() if self._pool else None
            if conn is None or conn.closed:
                conn = self._connect()
                with self._pool_lock:
                    self._all_readers.append(conn)
            try:
                return fn(self, conn, *args)
            except psycopg.OperationalError as exc:
                conn.close()
                raise self._map(exc) from None
            except psycopg.Error as exc:
                raise self._map(exc) from None
            finally:
                if not conn.closed:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.rollback()
                    with self._pool_lock:
                        self._pool.append(conn)

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._writer is None:
            await self.open()
        return await trio.to_thread.run_sync(self._read_sync, fn, *args, limiter=self._read_limiter)

    # -- the store protocol -------------------------------------------------------------------

    async def create_run(
        self, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
    ) -> tuple[RunRow, bool]:
        return await self._submit(_create_run, row, self._owner, journal, audit)  # type: ignore[no-any-return]

    async def write(self, write: Write) -> bool:
        return await self._submit(_write, write)  # type: ignore[no-any-return]

    def write_behind(self, write: Write) -> None:
        self._queue.put(Op(_write, (write,), trio.lowlevel.current_trio_token(), None))

    async def add_signal(
        self,
        run_id: str,
        event: str,
        payload: str,
        sent_at: float,
        dedup_key: str | None = None,
        by: str | None = None,
    ) -> SignalRow:
        return await self._submit(_add_signal, run_id, event, payload, sent_at, True, dedup_key, by)  # type: ignore[no-any-return]

    async def transition(
        self, run_id: str, plan: Plan, *, journal: bool = False, descendants: bool = False
    ) -> list[RunRow]:
        return await self._submit(_transition, run_id, plan, journal, descendants, None)  # type: ignore[no-any-return]

    async def get_run(self, run_id: str) -> RunRow | None:
        return await self._read(_get_run, run_id)  # type: ignore[no-any-return]

    async def load(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        return await self._read(_load, run_id, False)  # type: ignore[no-any-return]

    async def history(self, run_id: str) -> tuple[list[EntryRow], list[SignalRow]]:
        found = await self._read(_load, run_id, True)
        if found is None:
            raise RunNotFound(run_id)
        return found[1], found[2]

    async def audit(self, run_id: str) -> list[AuditRow]:
        return await self._read(_audit, run_id)  # type: ignore[no-any-return]

    async def run_info(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow], list[AuditRow]] | None:
        return await self._read(_run_info, run_id)  # type: ignore[no-any-return]

    def audit_trail(self, run_id: str) -> list[AuditRow]:
        return self._read_sync(_audit, run_id)  # type: ignore[no-any-return]

    async def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[RunRow]:
        statuses = [status] if isinstance(status, str) else (list(status) if status is not None else None)
        return await self._read(  # type: ignore[no-any-return]
            _list_runs, statuses, workflow_id, limit, offset, None, None, False, tag
        )

    async def count_by_status(self) -> dict[str, int]:
        return await self._read(_count_by_status)  # type: ignore[no-any-return]

    async def due_runs(self, until: float, limit: int = 10_000) -> list[tuple[str, float]]:
        return await self._read(_due_runs, until, limit)  # type: ignore[no-any-return]

    async def next_wake_after(self, after: float) -> float | None:
        return await self._read(_next_wake_after, after)  # type: ignore[no-any-return]

    async def runs_with_signals(self) -> list[str]:
        return await self._read(_runs_with_signals)  # type: ignore[no-any-return]

    async def prune(self, before: float, statuses: list[str], limit: int) -> int:
        return await self._submit(_prune, before, statuses, limit)  # type: ignore[no-any-return]

    async def running_runs(self) -> list[str]:
        return await self._read(_running_runs)  # type: ignore[no-any-return]

    # -- shared with other processes (SharedStore) ----------------------------------------------

    def set_owner(self, owner: str | None, on_lost: Callable[[], None] | None = None) -> None:
        self._owner = owner
        self._on_lost = on_lost

    def lease_acquire(
        self, name: str, owner: str, now: float, ttl: float, info: dict[str, Any]
    ) -> tuple[bool, LeaseRow | None]:
        return self._submit_sync(_lease_acquire, name, owner, now, ttl, info)  # type: ignore[no-any-return]

    def lease_renew(self, name: str, owner: str, now: float, ttl: float) -> bool:
        return self._submit_sync(_lease_renew, name, owner, now, ttl)  # type: ignore[no-any-return]

    def lease_release(self, name: str, owner: str, now: float) -> None:
        self._submit_sync(_lease_release, name, owner, now)

    def leases(self) -> list[LeaseRow]:
        return self._read_sync(_leases)  # type: ignore[no-any-return]

    def publish_workflows(self, workflows: list[dict[str, Any]], owner: str, now: float) -> None:
        self._submit_sync(_publish_workflows, workflows, owner, now)

    def published_workflows(self) -> list[PublishedWorkflow]:
        return self._read_sync(_published_workflows)  # type: ignore[no-any-return]

    def last_change(self) -> int:
        return self._read_sync(_last_change)  # type: ignore[no-any-return]

    def changes_after(self, after: int, limit: int) -> list[Change]:
        """Claims first, then the outbox rows of this owner's runs not handed out yet.

        Not by ``seq > after``: sequence numbers are taken when a row is inserted, not when
        it commits, so a client's transaction can commit a lower ``seq`` after a higher one
        was read. Every row still there is read instead (the feed forgets what it handled)."""
        claimed: list[Change] = []
        if self._owner is not None:
            claimed = self._submit_sync(_claim, self._owner, time.time(), limit)
        with self._handed_lock:
            handed = sorted(self._handed)
        changes: list[Change] = self._read_sync(_changes_after, handed, limit)
        with self._handed_lock:
            self._handed.update(c.seq for c in changes)
        return claimed + changes

    def forget_changes(self, upto: int) -> None:
        """Delete the changes up to ``upto`` that :meth:`changes_after` handed out (with
        no owner: every change up to ``upto``)."""
        if self._owner is None:
            self._submit_sync(_forget_changes, None, upto)
            return
        with self._handed_lock:
            done = sorted(seq for seq in self._handed if seq <= upto)
        if done:
            self._submit_sync(_forget_changes, done, upto)
            with self._handed_lock:
                self._handed.difference_update(done)

    def watch(self, poll_interval: float, *, wake_socket: bool = True) -> ChangeWatch:
        return _Listen(self)

    def client_trigger(
        self, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
    ) -> tuple[RunRow, bool]:
        return self._submit_sync(_client_trigger, row, journal, audit)  # type: ignore[no-any-return]

    def client_signal(
        self,
        run_id: str,
        event: str,
        payload: str,
        sent_at: float,
        dedup_key: str | None = None,
        by: str | None = None,
    ) -> SignalRow:
        return self._submit_sync(_add_signal, run_id, event, payload, sent_at, False, dedup_key, by)  # type: ignore[no-any-return]

    def client_prune(self, before: float, statuses: list[str], limit: int) -> int:
        return self._submit_sync(_prune, before, statuses, limit)  # type: ignore[no-any-return]

    def client_transition(
        self, run_id: str, plan: Plan, *, announce: str, journal: bool = False, descendants: bool = False
    ) -> list[RunRow]:
        return self._submit_sync(_transition, run_id, plan, journal, descendants, announce)  # type: ignore[no-any-return]

    def snapshot(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        return self._read_sync(_load, run_id, True)  # type: ignore[no-any-return]

    def run_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        return self._read_sync(_run_ids_with_prefix, prefix, limit)  # type: ignore[no-any-return]

    def settled(self, run_id: str) -> tuple[RunRow, bool]:
        return self._read_sync(_settled, run_id)  # type: ignore[no-any-return]

    def query_runs(
        self,
        statuses: list[str] | None,
        workflow_id: str | None,
        limit: int | None,
        offset: int,
        search: str | None = None,
        waiting: str | None = None,
        oldest_first: bool = False,
        *,
        tag: str | None = None,
    ) -> list[RunRow]:
        return self._read_sync(  # type: ignore[no-any-return]
            _list_runs, statuses, workflow_id, limit, offset, search, waiting, oldest_first, tag
        )

    def count_runs(
        self,
        statuses: list[str] | None,
        workflow_id: str | None,
        search: str | None = None,
        waiting: str | None = None,
        *,
        tag: str | None = None,
    ) -> int:
        return self._read_sync(_count_runs, statuses, workflow_id, search, waiting, tag)  # type: ignore[no-any-return]

    def engine_counts(self) -> EngineCounts:
        return self._read_sync(_engine_counts)  # type: ignore[no-any-return]

    def data_version(self) -> int:
        # The server's write-ahead log position: it moves with every commit, of any process.
        return self._read_sync(_wal_position)  # type: ignore[no-any-return]

    @property
    def owner(self) -> str | None:
        return self._owner


class _Listen(ChangeWatch):
    """``LISTEN tarry_changes`` on a connection of its own; says "look" on a notice, and at
    least every :data:`CLAIM_EVERY` seconds (claims of a dead worker's runs need no notice)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: psycopg.Connection[Any] | None = None
        self._last = 0.0
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = self._store._connect()
            conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        return self._conn

    def wait(self, timeout: float) -> bool:
        with self._lock:
            try:
                conn = self._connection()
                got = False
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    got = True
            except (psycopg.Error, StoreError) as exc:
                log.warning("listening for changes failed (%s); looking again in a second", exc)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                time.sleep(1.0)
                return True
        now = time.monotonic()
        if got or now - self._last >= CLAIM_EVERY:
            self._last = now
            return True
        return False

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# -- statements: each takes the store and a connection (writes inside the writer's transaction) ----
# (Cursor type parameters are left to psycopg: rows come back as tuples.)

Conn = Any


def _fenced_run(op: Op) -> str | None:
    """The run a worker's write must own to commit (``None``: not fenced by ownership)."""
    if op.fn is _write:
        return op.args[0].run_id  # type: ignore[no-any-return]
    return None


def _run_row(values: Any) -> RunRow:
    return RunRow(*values)


def _get_run(store: PostgresStore, conn: Conn, run_id: str) -> RunRow | None:
    row = conn.execute(f"SELECT {RUN_SELECT} WHERE r.run_id = %s", (run_id,)).fetchone()
    return None if row is None else _run_row(row)


#: Run ids in ``[low, high)`` in code point order, a seek on ``tarry_runs_id_c`` whatever the
#: database's collation (under a locale's, a range can miss ids); ``{below}``: the upper bound.
RUN_IDS_FROM = (
    'SELECT run_id FROM tarry_runs WHERE run_id COLLATE "C" >= %s{below} ORDER BY run_id COLLATE "C" LIMIT %s'
)


def _run_ids_with_prefix(store: PostgresStore, conn: Conn, prefix: str, limit: int) -> list[str]:
    """Run ids starting with ``prefix`` (:data:`RUN_IDS_FROM`)."""
    low, high = prefix_range(prefix)
    query = RUN_IDS_FROM.format(below="" if high is None else ' AND run_id COLLATE "C" < %s')
    bounds = (low,) if high is None else (low, high)
    return [r[0] for r in conn.execute(query, (*bounds, limit)) if r[0].startswith(prefix)]


def _notify(conn: Conn, kind: str, run_id: str, at: float, signal_id: int | None = None) -> None:
    conn.execute(
        "INSERT INTO tarry_outbox (kind, run_id, signal_id, at) VALUES (%s, %s, %s, %s)", (kind, run_id, signal_id, at)
    )
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{kind}:{run_id}"))


def _create_run(
    store: PostgresStore,
    conn: Conn,
    row: RunRow,
    owner: str | None,
    journal: list[EntryRow] | None = None,
    audit: AuditRow | None = None,
) -> tuple[RunRow, bool]:
    inserted = conn.execute(
        f"INSERT INTO tarry_runs ({RUN_COLUMNS}, owner, parent_run_id, forked_from, traceparent, tags) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (run_id) DO NOTHING",
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
            owner,
            row.parent_run_id,
            row.forked_from,
            row.traceparent,
            row.tags,
        ),
    ).rowcount
    if inserted:
        if journal:
            _write(store, conn, Write(row.run_id, row.updated_at, entries=journal))
        if audit is not None:
            _insert_audit(conn, [audit])
        return row, True
    existing = _get_run(store, conn, row.run_id)
    assert existing is not None  # the conflict was on this run_id
    if existing.workflow_id != row.workflow_id:
        raise RunAlreadyExists(row.run_id, existing.workflow_id)
    return existing, False


def _client_trigger(
    store: PostgresStore, conn: Conn, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
) -> tuple[RunRow, bool]:
    # Nobody's: the first worker to look claims it.
    stored, created = _create_run(store, conn, row, None, journal, audit)
    if created:
        _notify(conn, "trigger", row.run_id, row.created_at)
    return stored, created


def _write(store: PostgresStore, conn: Conn, write: Write, in_process: bool = True) -> bool:
    if write.delete:
        status, _, _ = _status(conn, write.run_id)
        if write.require is not None and status not in write.require:
            return False
        _delete_runs(conn, [write.run_id], keep_audit=True)
        if write.audit:
            _insert_audit(conn, write.audit)
        return True
    if write.run or write.require is not None or write.signals:
        columns = ["updated_at = %s"]
        values: list[Any] = [write.updated_at]
        for column, value in write.run.items():
            if column not in WRITABLE_RUN_COLUMNS:
                raise ValueError(f"tarry_runs.{column} cannot be written")
            columns.append(f"{column} = %s")
            values.append(value)
        sql = f"UPDATE tarry_runs SET {', '.join(columns)} WHERE run_id = %s"
        values.append(write.run_id)
        if write.require is not None:
            sql += " AND status = ANY(%s)"
            values.append(sorted(write.require))
        if conn.execute(sql, values).rowcount == 0:
            if conn.execute("SELECT 1 FROM tarry_runs WHERE run_id = %s", (write.run_id,)).fetchone() is None:
                raise RunNotFound(write.run_id)
            return False
    for signal_id, step_id in write.consume:
        taken = conn.execute(
            "UPDATE tarry_signals SET consumed_at = %s, consumed_by = %s "
            "WHERE id = %s AND run_id = %s AND consumed_at IS NULL",
            (write.updated_at, step_id, signal_id, write.run_id),
        ).rowcount
        if taken == 0:
            raise RunStateError(f"signal {signal_id} of run {write.run_id!r} was already consumed", run_id=write.run_id)
    if write.truncate_from is not None:
        conn.execute("DELETE FROM tarry_entries WHERE run_id = %s AND seq >= %s", (write.run_id, write.truncate_from))
    if write.entries:
        try:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO tarry_entries ({ENTRY_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (run_id, seq) DO UPDATE SET step_id = excluded.step_id, kind = excluded.kind, "
                    "status = excluded.status, started_at = excluded.started_at, finished_at = excluded.finished_at, "
                    "output = excluded.output, error = excluded.error, detail = excluded.detail, "
                    "attempts = excluded.attempts",
                    [
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
                        for e in write.entries
                    ],
                )
        except pg_errors.ForeignKeyViolation:
            raise RunNotFound(write.run_id) from None
    for target, event, payload in write.signals:
        # A child's outcome to its parent, which another worker may own by now: announced
        # like a client's signal when so. A parent that ended or was pruned gets nothing.
        found = conn.execute("SELECT status, owner FROM tarry_runs WHERE run_id = %s", (target,)).fetchone()
        if found is None or found[0] in TERMINAL:
            continue
        added = conn.execute(
            "INSERT INTO tarry_signals (run_id, event, payload, sent_at) VALUES (%s, %s, %s, %s) RETURNING id",
            (target, event, payload, write.updated_at),
        ).fetchone()
        if _tell_owner(store, found[1], in_process):
            _notify(conn, "signal", target, write.updated_at, int(added[0]))
    if write.audit:
        _insert_audit(conn, write.audit)
    return True


def _insert_audit(conn: Conn, rows: list[AuditRow]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO tarry_audit ({AUDIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
            [(a.run_id, a.action, a.by, a.at, a.detail) for a in rows],
        )


def _run_info(
    store: PostgresStore, conn: Conn, run_id: str
) -> tuple[RunRow, list[EntryRow], list[SignalRow], list[AuditRow]] | None:
    """The run, its journal and signals (one snapshot), then its audit trail: one read."""
    found = _load(store, conn, run_id, True)
    return None if found is None else (*found, _audit(store, conn, run_id))


def _audit(store: PostgresStore, conn: Conn, run_id: str) -> list[AuditRow]:
    return [
        AuditRow(*r)
        for r in conn.execute(f"SELECT {AUDIT_COLUMNS} FROM tarry_audit WHERE run_id = %s ORDER BY id", (run_id,))
    ]


def _status(conn: Conn, run_id: str) -> tuple[str, str | None, str | None]:
    """The run's status, owner and ``wait_event``, locking its row."""
    row = conn.execute(
        "SELECT status, owner, wait_event FROM tarry_runs WHERE run_id = %s FOR UPDATE", (run_id,)
    ).fetchone()
    if row is None:
        raise RunNotFound(run_id)
    return str(row[0]), row[1], row[2]


def _tell_owner(store: PostgresStore, owner: str | None, in_process: bool) -> bool:
    """Whether a change must be announced: always from a client; from a worker's own
    runtime only when another worker (or none) owns the run."""
    if not in_process:
        return True
    if store.owner is None:
        return False  # a plain runtime is the database's only process: nobody else to tell
    return owner != store.owner


def _add_signal(
    store: PostgresStore,
    conn: Conn,
    run_id: str,
    event: str,
    payload: str,
    sent_at: float,
    in_process: bool,
    dedup_key: str | None = None,
    by: str | None = None,
) -> SignalRow:
    status, owner, waits_for = _status(conn, run_id)  # locks the run: two senders of one key queue here
    if dedup_key is not None:
        found = conn.execute(
            f"SELECT {SIGNAL_COLUMNS} FROM tarry_signals WHERE run_id = %s AND dedup_key = %s", (run_id, dedup_key)
        ).fetchone()
        if found is not None:
            return same_signal(SignalRow(*found), event, payload, dedup_key)
    if status in TERMINAL:
        raise RunFinished(run_id, status, "signal")
    row = conn.execute(
        "INSERT INTO tarry_signals (run_id, event, payload, sent_at, dedup_key, sent_by) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (run_id, event, payload, sent_at, dedup_key, by),
    ).fetchone()
    signal = SignalRow(int(row[0]), run_id, event, payload, sent_at, sent_by=by, run_waits_for=waits_for)
    if _tell_owner(store, owner, in_process):
        _notify(conn, "signal", run_id, sent_at, signal.id)
    return signal


def _transition(
    store: PostgresStore,
    conn: Conn,
    run_id: str,
    plan: Plan,
    with_journal: bool,
    with_descendants: bool,
    announce: str | None,
) -> list[RunRow]:
    """See :meth:`tarry.store.base.Store.transition`. The run and its descendants are
    locked first (``FOR UPDATE``), so the plan sees them as they are when it writes.
    ``announce``: a client's change kind (``None``: this process's runtime, which tells
    other workers only about runs they own)."""
    _status(conn, run_id)  # locks the run (RunNotFound)
    low, high = descendant_range(run_id)
    owners = dict(
        conn.execute(
            "SELECT run_id, owner FROM tarry_runs WHERE run_id = %s OR (run_id >= %s AND run_id < %s) FOR UPDATE",
            (run_id, low, high) if with_descendants else (run_id, run_id, run_id),
        ).fetchall()
    )
    root = _get_run(store, conn, run_id)
    assert root is not None
    tree = RunTree(root)
    if with_journal:
        tree.journal = [
            EntryRow(*r)
            for r in conn.execute(
                f"SELECT {ENTRY_COLUMNS} FROM tarry_entries WHERE run_id = %s ORDER BY seq", (run_id,)
            )
        ]
    if with_descendants:
        rows = conn.execute(f"SELECT {RUN_SELECT} WHERE r.run_id >= %s AND r.run_id < %s", (low, high))
        tree.descendants = descendants_of(run_id, (_run_row(r) for r in rows))
    in_process = announce is None
    written = []
    for change in plan(tree):
        if not _write(store, conn, change, in_process):
            raise RunStateError(f"run {change.run_id!r} changed under a transition", run_id=change.run_id)
        if change.delete:
            continue  # nothing left to return or to announce
        if announce == "retry":
            # Claims: a retried run is nobody's, so whichever worker is free takes it.
            conn.execute("UPDATE tarry_runs SET owner = NULL WHERE run_id = %s", (change.run_id,))
        row = _get_run(store, conn, change.run_id)
        assert row is not None
        if _tell_owner(store, owners.get(change.run_id), in_process):
            # The kind only words the worker's log line; what it does follows the row.
            kind = announce or ("cancel" if row.cancel_reason is not None else "retry")
            _notify(conn, kind, change.run_id, change.updated_at)
        written.append(row)
    return written


def _load(
    store: PostgresStore, conn: Conn, run_id: str, every_signal: bool
) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
    """The run, its journal and its signals (only unconsumed ones unless ``every_signal``),
    from one snapshot.

    For an owner's runtime (``every_signal`` false, an owner set), an unfinished run of
    another worker is not there (``None``): a worker only ever drives its own runs."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        run = _get_run(store, conn, run_id)
        if run is None:
            return None
        if not every_signal and store.owner is not None and run.status not in TERMINAL:
            owner = conn.execute("SELECT owner FROM tarry_runs WHERE run_id = %s", (run_id,)).fetchone()
            if owner is None or owner[0] != store.owner:
                return None
        entries = [
            EntryRow(*r)
            for r in conn.execute(
                f"SELECT {ENTRY_COLUMNS} FROM tarry_entries WHERE run_id = %s ORDER BY seq", (run_id,)
            )
        ]
        pending = "" if every_signal else " AND consumed_at IS NULL"
        signals = [
            SignalRow(*r)
            for r in conn.execute(
                f"SELECT {SIGNAL_COLUMNS} FROM tarry_signals WHERE run_id = %s{pending} ORDER BY id", (run_id,)
            )
        ]
    return run, entries, signals


def _run_filter(
    statuses: list[str] | None,
    workflow_id: str | None,
    search: str | None,
    waiting: str | None,
    tag: str | None = None,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    values: list[Any] = []
    if tag is not None:  # r.tags is ",a,b,": see journal.encode_tags (LIKE's escape is "\\")
        where.append("r.tags LIKE %s")
        values.append(tag_pattern(tag))
    if statuses is not None:
        where.append("r.status = ANY(%s)")
        values.append(statuses)
    if workflow_id is not None:
        where.append("r.workflow_id = %s")
        values.append(workflow_id)
    if waiting == "event":
        where.append("r.status = 'suspended' AND r.wait_event IS NOT NULL")
    elif waiting == "sleep":
        where.append("r.status = 'suspended' AND r.wait_event IS NULL")
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(r.run_id ILIKE %s OR r.workflow_id ILIKE %s OR r.payload ILIKE %s)")
        values.extend([pattern] * 3)
    return (" WHERE " + " AND ".join(where)) if where else "", values


def _list_runs(
    store: PostgresStore,
    conn: Conn,
    statuses: list[str] | None,
    workflow_id: str | None,
    limit: int | None,
    offset: int,
    search: str | None = None,
    waiting: str | None = None,
    oldest_first: bool = False,
    tag: str | None = None,
) -> list[RunRow]:
    where, values = _run_filter(statuses, workflow_id, search, waiting, tag)
    order = "r.updated_at ASC, r.run_id ASC" if oldest_first else "r.created_at DESC, r.run_id DESC"
    sql = f"SELECT {RUN_SELECT}{where} ORDER BY {order} LIMIT %s OFFSET %s"
    values.extend([limit, offset])
    return [_run_row(r) for r in conn.execute(sql, values)]


def _count_runs(
    store: PostgresStore,
    conn: Conn,
    statuses: list[str] | None,
    workflow_id: str | None,
    search: str | None = None,
    waiting: str | None = None,
    tag: str | None = None,
) -> int:
    where, values = _run_filter(statuses, workflow_id, search, waiting, tag)
    return int(conn.execute(f"SELECT count(*) FROM tarry_runs r{where}", values).fetchone()[0])


def _count_by_status(store: PostgresStore, conn: Conn) -> dict[str, int]:
    return {str(s): int(n) for s, n in conn.execute("SELECT status, count(*) FROM tarry_runs GROUP BY status")}


def _owned(store: PostgresStore) -> tuple[str, list[Any]]:
    """The clause that scopes a worker's recovery reads to its own runs."""
    if store.owner is None:
        return "", []
    return " AND owner = %s", [store.owner]


def _due_runs(store: PostgresStore, conn: Conn, until: float, limit: int) -> list[tuple[str, float]]:
    mine, values = _owned(store)
    return [
        (str(r[0]), float(r[1]))
        for r in conn.execute(
            f"SELECT run_id, wake_at FROM tarry_runs WHERE status = 'suspended' AND wake_at <= %s{mine} "
            "ORDER BY wake_at LIMIT %s",
            [until, *values, limit],
        )
    ]


def _next_wake_after(store: PostgresStore, conn: Conn, after: float) -> float | None:
    mine, values = _owned(store)
    row = conn.execute(
        f"SELECT min(wake_at) FROM tarry_runs WHERE status = 'suspended' AND wake_at > %s{mine}", [after, *values]
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


#: Whether signal ``s`` is one that suspended run ``r`` waits for (a multi-event wait joins
#: its names with ``\x1f``).
WAITED_FOR = (
    "(s.event = r.wait_event OR position(chr(31) || s.event || chr(31) in chr(31) || r.wait_event || chr(31)) > 0)"
)


def _runs_with_signals(store: PostgresStore, conn: Conn) -> list[str]:
    mine, values = _owned(store)
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT r.run_id FROM tarry_runs r WHERE r.status = 'suspended' AND r.wait_event IS NOT NULL"
            f"{mine.replace('owner', 'r.owner')} AND EXISTS (SELECT 1 FROM tarry_signals s WHERE s.run_id = r.run_id "
            f"AND s.consumed_at IS NULL AND {WAITED_FOR})",
            values,
        )
    ]


def _prune(store: PostgresStore, conn: Conn, before: float, statuses: list[str], limit: int) -> int:
    """Delete up to ``limit`` ended runs last changed before ``before`` (oldest first);
    their journals and signals go by ON DELETE CASCADE, their outbox rows explicitly."""
    ended = [s for s in statuses if s in TERMINAL]
    if not ended:
        return 0
    doomed = [
        str(r[0])
        for r in conn.execute(
            "SELECT run_id FROM tarry_runs WHERE status = ANY(%s) AND updated_at < %s ORDER BY updated_at LIMIT %s "
            "FOR UPDATE SKIP LOCKED",
            (ended, before, limit),
        )
    ]
    if doomed:
        _delete_runs(conn, doomed)
    return len(doomed)


def _delete_runs(conn: Conn, run_ids: list[str], *, keep_audit: bool = False) -> None:
    """Delete runs; their journals and signals go by ON DELETE CASCADE, their outbox rows
    and (unless ``keep_audit``: one run deleted on request) audit trails explicitly."""
    conn.execute("DELETE FROM tarry_outbox WHERE run_id = ANY(%s)", (run_ids,))
    if not keep_audit:
        conn.execute("DELETE FROM tarry_audit WHERE run_id = ANY(%s)", (run_ids,))
    conn.execute("DELETE FROM tarry_runs WHERE run_id = ANY(%s)", (run_ids,))


def _running_runs(store: PostgresStore, conn: Conn) -> list[str]:
    mine, values = _owned(store)
    return [str(r[0]) for r in conn.execute(f"SELECT run_id FROM tarry_runs WHERE status = 'running'{mine}", values)]


def _settled(store: PostgresStore, conn: Conn, run_id: str) -> tuple[RunRow, bool]:
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        run = _get_run(store, conn, run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status in TERMINAL:
            return run, True
        if run.status != "suspended":
            return run, False
        if conn.execute("SELECT 1 FROM tarry_outbox WHERE run_id = %s LIMIT 1", (run_id,)).fetchone():
            return run, False
        if (
            run.wait_event is not None
            and conn.execute(
                "SELECT 1 FROM tarry_signals s, tarry_runs r WHERE s.run_id = %s AND r.run_id = s.run_id "
                f"AND s.consumed_at IS NULL AND {WAITED_FOR} LIMIT 1",
                (run_id,),
            ).fetchone()
        ):
            return run, False
        return run, True


def _engine_counts(store: PostgresStore, conn: Conn) -> EngineCounts:
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        counts = _count_by_status(store, conn)
        backlog = int(conn.execute("SELECT count(*) FROM tarry_outbox").fetchone()[0])
        row = conn.execute("SELECT value FROM tarry_meta WHERE key = 'schema_version'").fetchone()
    return EngineCounts(counts, backlog, int(row[0]) if row else 0)


def _wal_position(store: PostgresStore, conn: Conn) -> int:
    # The insert position moves with the commit itself; the write position
    # (pg_current_wal_lsn) lags behind it by up to wal_writer_delay with synchronous_commit=off.
    return int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint").fetchone()[0])


# -- the change feed and claims ------------------------------------------------------------------


def _claim(store: PostgresStore, conn: Conn, owner: str, now: float, limit: int) -> list[Change]:
    """Take up to ``limit`` unfinished runs that no live worker owns. ``SKIP LOCKED``: a run
    another worker is claiming (or committing for) right now is left to it."""
    # Changes to runs that ended while no live worker owned them (a client cancelled a dead
    # worker's sleeping run, say) concern nobody: no claim would ever cover them.
    conn.execute(
        "DELETE FROM tarry_outbox o USING tarry_runs r WHERE r.run_id = o.run_id "
        "AND r.status IN ('completed', 'failed', 'cancelled') AND (r.owner IS NULL OR r.owner NOT IN "
        "(SELECT owner FROM tarry_leases WHERE expires_at > %s))",
        (now,),
    )
    # "Dead" means a lease row that ran out (a lease that ran out is never renewed), not "no
    # current lease in this statement's snapshot": a worker that joined and claimed a run
    # after the snapshot was taken must not lose it. Lease rows of owners with unfinished
    # runs are kept for that (see _lease_acquire).
    rows = conn.execute(
        "WITH dead AS (SELECT owner FROM tarry_leases WHERE expires_at <= %s), "
        f"free AS (SELECT run_id FROM tarry_runs WHERE status IN {ACTIVE_SQL} "
        "AND (owner IS NULL OR owner IN (SELECT owner FROM dead)) "
        "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED) "
        "UPDATE tarry_runs r SET owner = %s FROM free WHERE r.run_id = free.run_id RETURNING r.run_id",
        (now, limit, owner),
    ).fetchall()
    if not rows:
        return []
    run_ids = [r[0] for r in rows]
    conn.execute("DELETE FROM tarry_outbox WHERE run_id = ANY(%s)", (run_ids,))  # the claim covers them
    runs = [_run_row(r) for r in conn.execute(f"SELECT {RUN_SELECT} WHERE r.run_id = ANY(%s)", (run_ids,))]
    return [Change(0, "claim", run.run_id, None, run) for run in sorted(runs, key=lambda r: r.created_at)]


def _changes_after(store: PostgresStore, conn: Conn, handed: list[int], limit: int) -> list[Change]:
    """Outbox rows of the runs this store's owner owns (every row, without an owner) but
    those in ``handed``, oldest first, each with its signal and run."""
    mine, values = _owned(store)
    signal_columns = ", ".join(f"s.{c.strip()}" for c in SIGNAL_COLUMNS.split(","))
    n_signal = len(SIGNAL_COLUMNS.split(","))
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        rows = conn.execute(
            f"SELECT o.seq, o.kind, o.run_id, {signal_columns}, {RUN_FIELDS} "
            "FROM tarry_outbox o LEFT JOIN tarry_signals s ON s.id = o.signal_id "
            f"LEFT JOIN tarry_runs r ON r.run_id = o.run_id {LATEST_ENTRY} "
            f"WHERE NOT (o.seq = ANY(%s)){mine.replace('owner', 'r.owner')} ORDER BY o.seq LIMIT %s",
            [handed, *values, limit],
        ).fetchall()
    changes = []
    for r in rows:
        signal_values = r[3 : 3 + n_signal]
        run_values = r[3 + n_signal :]
        signal = SignalRow(*signal_values) if signal_values[0] is not None else None
        run = _run_row(run_values) if run_values[0] is not None else None
        changes.append(Change(int(r[0]), str(r[1]), str(r[2]), signal, run))
    return changes


def _forget_changes(store: PostgresStore, conn: Conn, seqs: list[int] | None, upto: int) -> None:
    if seqs is None:
        conn.execute("DELETE FROM tarry_outbox WHERE seq <= %s", (upto,))
    else:
        conn.execute("DELETE FROM tarry_outbox WHERE seq = ANY(%s)", (seqs,))


def _last_change(store: PostgresStore, conn: Conn) -> int:
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM tarry_outbox").fetchone()
    return int(row[0])


# -- leases and the registry -----------------------------------------------------------------------


def _lease_row(row: Any) -> LeaseRow:
    return LeaseRow(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]) if row[5] else {})


def _lease_acquire(
    store: PostgresStore, conn: Conn, name: str, owner: str, now: float, ttl: float, info: dict[str, Any]
) -> tuple[bool, LeaseRow | None]:
    conn.execute(  # old expired leases, but never one whose runs still wait to be claimed
        "DELETE FROM tarry_leases l WHERE l.expires_at < %s AND l.name <> %s AND NOT EXISTS "
        f"(SELECT 1 FROM tarry_runs r WHERE r.owner = l.owner AND r.status IN {ACTIVE_SQL})",
        (now - FORGET_LEASES_AFTER, name),
    )
    current = conn.execute(
        "SELECT name, owner, acquired_at, heartbeat_at, expires_at, info FROM tarry_leases WHERE name = %s FOR UPDATE",
        (name,),
    ).fetchone()
    previous = None if current is None else _lease_row(current)
    if previous is not None and previous.owner != owner and previous.expires_at > now:
        return False, previous
    conn.execute(
        "INSERT INTO tarry_leases (name, owner, acquired_at, heartbeat_at, expires_at, info) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
        "acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at, "
        "expires_at = excluded.expires_at, info = excluded.info",
        (name, owner, now, now, now + ttl, orjson.dumps(info).decode()),
    )
    return True, previous


def _lease_renew(store: PostgresStore, conn: Conn, name: str, owner: str, now: float, ttl: float) -> bool:
    # A lease that already ran out is not renewed: the other workers may have taken its runs.
    return bool(
        conn.execute(
            "UPDATE tarry_leases SET heartbeat_at = %s, expires_at = %s WHERE name = %s AND owner = %s "
            "AND expires_at > %s",
            (now, now + ttl, name, owner, now),
        ).rowcount
        == 1
    )


def _lease_release(store: PostgresStore, conn: Conn, name: str, owner: str, now: float) -> None:
    conn.execute(
        "UPDATE tarry_leases SET expires_at = %s, heartbeat_at = %s WHERE name = %s AND owner = %s",
        (now, now, name, owner),
    )


def _leases(store: PostgresStore, conn: Conn) -> list[LeaseRow]:
    return [
        _lease_row(r)
        for r in conn.execute(
            "SELECT name, owner, acquired_at, heartbeat_at, expires_at, info FROM tarry_leases "
            "ORDER BY heartbeat_at DESC"
        )
    ]


def _publish_workflows(
    store: PostgresStore, conn: Conn, workflows: list[dict[str, Any]], owner: str, now: float
) -> None:
    conn.execute("DELETE FROM tarry_workflows WHERE published_by = %s", (owner,))
    if not workflows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tarry_workflows (id, published_by, description, schema_kind, payload_schema, published_at, "
            "schedule, tags) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    w["id"],
                    owner,
                    w.get("description"),
                    w["schema_kind"],
                    None if w.get("payload_schema") is None else orjson.dumps(w["payload_schema"]).decode(),
                    now,
                    None if w.get("schedule") is None else orjson.dumps(w["schedule"]).decode(),
                    encode_tags(tuple(w.get("tags") or ())),
                )
                for w in workflows
            ],
        )


def _published_workflows(store: PostgresStore, conn: Conn) -> list[PublishedWorkflow]:
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
            "SELECT DISTINCT ON (id) id, description, schema_kind, payload_schema, published_at, published_by, "
            "schedule, tags FROM tarry_workflows ORDER BY id, published_at DESC"
        )
    ]
