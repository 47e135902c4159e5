"""Client: the Runtime's verbs for processes that do not run workflows.

A web app that triggers runs, an operator's terminal, the dashboard: they open a
:class:`Client` on the database that workers (``tarry worker``) serve, a SQLite file or a
PostgreSQL URL. Everything goes through the database: a write is committed when the call
returns, whether a worker is up or not, and a worker picks it up within milliseconds (see
:class:`tarry.store.base.SharedStore`).

The Client is synchronous and thread-safe: each call is short and blocks its thread (a
trio or asyncio program uses :class:`tarry.AsyncClient`, or runs it in a worker thread as
the dashboard does).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from . import codec, lifecycle
from .commitwatch import CommitWatch
from .errors import (
    DatabaseMissing,
    InvalidArgument,
    RunNotFound,
    WaitTimeout,
    WorkflowNotFound,
)
from .identity import default_identity, resolve_identity
from .journal import (
    PRUNE_BATCH,
    STATUSES,
    TERMINAL,
    RunRow,
    delivery,
    encode_tags,
    new_run_id,
    prune_filter,
    run_filter,
    same_trigger,
    trigger_audit,
    waited_events,
)
from .limits import DEFAULT_MAX_PAYLOAD_BYTES, check_limit, check_name
from .registry import check_payload, describe
from .results import AuditInfo, RunInfo, RunResult, _dt, _to_dict, outcome
from .store import is_url, store_from_url
from .store.base import SharedStore
from .tracing import current_traceparent
from .workflow import Workflow

__all__ = ["Client", "EngineInfo", "SignalReceipt", "WorkflowInfo"]

#: The shortest run-id prefix :meth:`Client.resolve_run_id` looks up (a whole id may be shorter).
MIN_PREFIX = 6

#: wait() / result(): seconds between re-reads of a run even when no commit was noticed.
REREAD_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow a Client knows: given to it (``source="local"``) or published in the
    database by the worker that serves it (``source="published"``).

    ``schema`` is the payload's JSON Schema when one could be derived (pydantic, msgspec,
    dataclass), else ``None``; ``schema_kind`` says what the workflow declared
    (``pydantic``, ``msgspec``, ``dataclass``, ``callable`` or ``any``).
    """

    to_dict = _to_dict

    id: str
    description: str | None
    schema_kind: str
    schema: dict[str, Any] | None
    source: str
    published_at: datetime | None = None
    #: ``{"cron", "tz", "catch_up"}`` of a scheduled workflow.
    schedule: dict[str, Any] | None = None
    #: The tags its runs carry.
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignalReceipt:
    """What became of a signal (:meth:`Client.send_signal`), as committed.

    ``delivery`` is ``delivered`` (the run was waiting for ``event``: that wait takes it),
    ``buffered`` (kept in the run's inbox until a wait for ``event``; ``waiting_for`` names
    what the run waits for instead, if anything) or ``deduplicated`` (its ``dedup_key`` was
    used before: nothing was added, ``signal_id`` is the earlier signal's).
    """

    run_id: str
    event: str
    signal_id: int
    delivery: str
    waiting_for: list[str]

    to_dict = _to_dict


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """The state of a database and of the workers serving it (``Client.engine_info()``).

    ``worker`` is the owner id of the most recently heard-from worker's lease
    (``host:pid:tag``; ``None`` if no worker ever served the database) and ``worker_alive``
    whether its lease is current. ``heartbeat_age`` is seconds since its last heartbeat.
    ``workers_alive`` counts the workers with a current lease (one at most on SQLite).
    ``pending_changes`` counts client writes not yet picked up by a worker. ``size_bytes``
    is the database file plus its write-ahead log (``None`` for a database server).
    """

    to_dict = _to_dict

    path: str
    size_bytes: int | None
    schema_version: int
    runs: dict[str, int]
    pending_changes: int
    worker: str | None
    worker_alive: bool
    worker_pid: int | None
    worker_host: str | None
    worker_started_at: datetime | None
    heartbeat_at: datetime | None
    heartbeat_age: float | None
    lease_expires_at: datetime | None
    workers_alive: int = 0


class Client:
    """The verbs of :class:`Runtime` over a shared database, for processes that do not run
    the workflows.

    Args:
        path: the database workers serve (or will serve): a SQLite file's path, or a
            ``postgresql://`` URL (``pip install 'tarry[postgres]'``).
        workflows: the workflows' code, if this process has it (a web app importing the
            same module): payloads are then validated exactly as ``Runtime.trigger`` does.
            Without it, the registry the worker published in the database is used (see
            :mod:`tarry.registry`).
        create: create the database when the file does not exist (the default, so that a
            run can be triggered before any worker started); ``False`` raises
            :class:`DatabaseMissing` instead.
        busy_timeout: seconds to wait for the worker's write lock before :class:`StoreBusy`.
        max_payload_bytes: the largest run or signal payload as JSON, in bytes; a larger
            one raises :class:`PayloadTooLarge` and nothing is written. Default 2 MiB (the
            runtime's default); ``None``: no limit.
        identity: who this Client's verbs are recorded as in the audit trail (each verb
            takes ``by=`` too); default ``user@host`` of this process.

    Raises:
        NotATarryDatabase: the file exists and was not made by tarry.
        SchemaTooNew: the file was written by a newer tarry.
        DatabaseMissing: no file and ``create=False``.
        StoreError: a database server that cannot be reached.

    Guarantees:
        Every write (``trigger``, ``signal``, ``cancel``, ``retry``) is committed when the
        call returns, together with the notice workers read; a serving worker is woken
        right after (a datagram on SQLite, best effort: it also watches the file every
        ~20 ms; ``NOTIFY`` on PostgreSQL). Safe to share between threads. Close it (or use
        ``with``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        workflows: Iterable[Workflow[Any]] | None = None,
        create: bool = True,
        busy_timeout: float = 5.0,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
        identity: str | None = None,
    ) -> None:
        self.identity = resolve_identity(identity, default_identity())
        self.max_payload_bytes = check_limit("max_payload_bytes", max_payload_bytes)
        self.path: Path | str = str(path) if is_url(path) else Path(path)
        self._workflows: dict[str, Workflow[Any]] | None = None
        if workflows is not None:
            self._workflows = {}
            for wf in workflows:
                if not isinstance(wf, Workflow):
                    raise InvalidArgument(f"Client(workflows=...) takes workflows made by @workflow, not {wf!r}")
                if self._workflows.setdefault(wf.id, wf) is not wf:
                    raise InvalidArgument(f"two workflows with id {wf.id!r}", workflow_id=wf.id)
        if not create and isinstance(self.path, Path) and not self.path.exists():
            raise DatabaseMissing(str(self.path))
        self._store: SharedStore = store_from_url(path, busy_timeout=busy_timeout)
        self._store.open_sync()
        self._lock = threading.Lock()
        self._closed = False
        self._commits: CommitWatch | None = None  # started by the first wait()/result()

    def __repr__(self) -> str:
        return f"<Client {self._store.name!r}{' closed' if self._closed else ''}>"

    @property
    def store(self) -> SharedStore:
        """The database this Client talks to."""
        return self._store

    # -- life cycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the connections and threads. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            commits = self._commits
        if commits is not None:
            commits.close()  # a wait() in another thread wakes and finds the Client closed
        self._store.close_sync()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def _db(self) -> SharedStore:
        if self._closed:
            raise InvalidArgument(f"this Client on {str(self.path)!r} is closed")
        return self._store

    # -- validation -----------------------------------------------------------------------

    def _known(self) -> dict[str, WorkflowInfo]:
        return {w.id: w for w in self.workflows()}

    def _validated_payload(
        self, workflow: Workflow[Any] | str, payload: Any, force: bool = False
    ) -> tuple[str, str, tuple[str, ...]]:
        """The workflow id, the payload's JSON, validated as ``Runtime.trigger`` would, and
        the tags the run carries (the published registry's when this Client has no code)."""
        if isinstance(workflow, Workflow):
            payload_json = codec.dumps(workflow.validate(payload), what="payload", limit=self.max_payload_bytes)
            return workflow.id, payload_json, workflow.tags
        if not isinstance(workflow, str) or not workflow:
            raise InvalidArgument(f"expected a Workflow or a workflow id, not {workflow!r}")
        check_name("workflow id", workflow)
        if self._workflows is not None:
            wf = self._workflows.get(workflow)
            if wf is None and force:
                return workflow, codec.dumps(payload, what="payload", limit=self.max_payload_bytes), ()
            if wf is None:
                raise WorkflowNotFound(workflow, list(self._workflows))
            return wf.id, codec.dumps(wf.validate(payload), what="payload", limit=self.max_payload_bytes), wf.tags
        plain = codec.to_plain(payload, what="payload")
        known = self._known()
        if not known:  # no worker ever published: accepted, the worker validates when it starts the run
            return workflow, codec.dumps(plain, what="payload", limit=self.max_payload_bytes), ()
        info = known.get(workflow)
        if info is None and force:
            return workflow, codec.dumps(plain, what="payload", limit=self.max_payload_bytes), ()
        if info is None:
            raise WorkflowNotFound(workflow, list(known), published=True)
        checked = check_payload(workflow, info.schema, plain)
        return workflow, codec.dumps(checked, what="payload", limit=self.max_payload_bytes), info.tags

    # -- the verbs ------------------------------------------------------------------------

    def trigger(
        self,
        workflow: Workflow[Any] | str,
        payload: Any = None,
        *,
        run_id: str | None = None,
        force: bool = False,
        by: str | None = None,
    ) -> RunResult:
        """Start a run of ``workflow`` (its id, or the Workflow) with ``payload``.

        Returns at once with the new run (status ``running``); the worker drives it. Use
        :meth:`wait` for its first suspension or its end. With a ``run_id`` that exists for
        this workflow, nothing is written and the existing run's state comes back. Without
        one, the run gets a new UUIDv7, as with :meth:`Runtime.trigger`. With ``force``, a
        workflow id that is neither given to this Client nor published is queued all the
        same, its payload unchecked (a worker that serves it later runs it). ``by``: who asks,
        for the audit trail (default: this Client's ``identity``). The OpenTelemetry span
        current here, if any, is stored with the run (its spans join that trace).

        Raises:
            WorkflowNotFound: an id neither given to this Client nor published by the
                worker (when a worker has published a registry at all), without ``force``.
            PayloadValidationError: the payload fails the schema; nothing is written.
            NotSerializable: the payload has no JSON form.
            RunAlreadyExists: ``run_id`` belongs to a run of another workflow.
            IdempotencyConflict: ``run_id`` exists with another payload (nothing written).

        Guarantees:
            Committed when this returns, even with no worker up; the next worker on the
            file starts it. Without ``workflows=`` and with a callable validator (no JSON
            Schema published), the worker validates when the run starts and fails the run
            with ``PayloadValidationError``.
        """
        check_name("run_id", run_id, optional=True)
        who = resolve_identity(by, self.identity)
        workflow_id, payload_json, tags = self._validated_payload(workflow, payload, force)
        if run_id is None:
            run_id = new_run_id()
        now = time.time()
        new = RunRow(
            run_id,
            workflow_id,
            "running",
            payload_json,
            now,
            now,
            traceparent=current_traceparent(),
            tags=encode_tags(tags),
        )
        row, created = self._db.client_trigger(new, None, trigger_audit(new, who))
        if not created:
            same_trigger(row, payload_json)
        return RunResult.from_row(row)

    def signal(
        self, run_id: str, event: str, payload: Any = None, *, dedup_key: str | None = None, by: str | None = None
    ) -> bool:
        """Send the signal ``event`` with ``payload`` to a run; whether it was new. ``by``:
        who sends it, stored with it (default: this Client's ``identity``).

        With a ``dedup_key`` the run already received a signal under (by any process, at
        any time, consumed or not), nothing is sent and this returns ``False``.

        Raises:
            IdempotencyConflict: ``dedup_key`` was used with another event or payload.
            RunNotFound: no such run.
            RunFinished: the run has ended; nothing is stored.
            InvalidArgument: a run id, event name or dedup key that is not a name (empty,
                over 1000 bytes, or with a control character).
            NotSerializable: a payload with no JSON form (or with a NaN or infinity).
            PayloadTooLarge: the payload is over ``max_payload_bytes`` (nothing stored).

        Guarantees:
            Committed to the run's inbox when this returns: a run waiting for ``event``
            takes it as soon as a worker sees it (within milliseconds when one serves the
            file, at its start otherwise); a signal that arrives before its wait is kept.
        """
        return self.send_signal(run_id, event, payload, dedup_key=dedup_key, by=by).delivery != "deduplicated"

    def send_signal(
        self, run_id: str, event: str, payload: Any = None, *, dedup_key: str | None = None, by: str | None = None
    ) -> SignalReceipt:
        """:meth:`signal`, saying what became of the signal: ``delivered`` to a wait for
        ``event``, ``buffered`` in the inbox (the run waits for something else, or for
        nothing yet) or ``deduplicated``; see :class:`SignalReceipt`. Raises as
        :meth:`signal` does; a buffered signal is kept, never dropped."""
        check_name("run_id", run_id)
        check_name("event name", event, run_id=run_id)
        check_name("dedup_key", dedup_key, optional=True, run_id=run_id)
        who = resolve_identity(by, self.identity)
        payload_json = codec.dumps(payload, what="signal payload", run_id=run_id, limit=self.max_payload_bytes)
        row = self._db.client_signal(run_id, event, payload_json, time.time(), dedup_key, who)
        return SignalReceipt(run_id, event, row.id, delivery(row), waited_events(row.run_waits_for))

    def resolve_run_id(self, prefix: str) -> str:
        """The run id that ``prefix`` stands for: a whole run id, or the start of exactly
        one (at least 6 characters; UUIDv7 ids share their first 8 within a minute, so
        take them from the end of the time part on: 12 or more).

        Raises:
            RunNotFound: no run has that id, nor (with 6 or more characters) an id that
                starts with it.
            InvalidArgument: several runs' ids start with it (the message lists them);
                or it is not a name (empty, over 1000 bytes, a control character).
        """
        check_name("run id", prefix)
        found = self._db.run_ids_with_prefix(prefix, 11)
        if found and found[0] == prefix:
            return prefix
        if len(prefix) < MIN_PREFIX or not found:
            raise RunNotFound(prefix, min_prefix=MIN_PREFIX)
        if len(found) > 1:
            listed = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
            raise InvalidArgument(
                f"run id prefix {prefix!r} is ambiguous: {listed} all start with it; give more characters",
                run_id=prefix,
                candidates=found[:10],
            )
        return found[0]

    def prune(self, *, older_than: Any, status: str | Iterable[str] | None = None) -> int:
        """:meth:`Runtime.prune` from this process: delete ended runs that finished more
        than ``older_than`` ago (in batches of 500, one transaction each); how many."""
        seconds, statuses = prune_filter(older_than, status)
        before = time.time() - seconds
        total = 0
        while (n := self._db.client_prune(before, statuses, PRUNE_BATCH)) > 0:
            total += n
            if n < PRUNE_BATCH:
                break
        return total

    def delete(self, run_id: str, *, by: str | None = None) -> None:
        """Delete an ended run with its journal and signals (as :meth:`Runtime.delete`).
        Its audit trail stays, with who deleted it (``by``, default this Client's
        ``identity``): :meth:`audit_trail`.

        Raises:
            RunNotFound: no run has this id.
            RunStillActive: it has not ended (cancel it first); nothing is deleted.
            InvalidArgument: ``by`` is not a name.
        """
        plan = lifecycle.delete(time.time(), resolve_identity(by, self.identity))
        self._db.client_transition(run_id, plan, announce="delete")

    def cancel(self, run_id: str, *, reason: str | None = None, by: str | None = None) -> RunResult:
        """Cancel a run and every active run it started (``by``: who asks, for the audit
        trail).

        A suspended run ends ``cancelled`` in this call. A ``running`` run gets the request
        (``cancel_reason`` set, status still ``running``): its worker interrupts the step
        in progress and ends it ``cancelled``; :meth:`wait` for that.

        Raises:
            RunNotFound, RunFinished: nothing to cancel.
        """
        who = resolve_identity(by, self.identity)
        plan = lifecycle.cancel(reason or "cancelled by request", time.time(), who)
        rows = self._db.client_transition(run_id, plan, announce="cancel", descendants=True)
        return RunResult.from_row(rows[0])

    def retry(self, run_id: str, *, from_step: str | None = None, by: str | None = None) -> RunResult:
        """Re-drive a failed run from its journal (completed steps are not run again);
        ``by``: who asks, for the audit trail.

        Returns the run back in ``running``; the worker drives it. With ``from_step``: fork
        a new run from this one's journal up to that step, as :meth:`Runtime.retry` does,
        and return the new run (``running``, ``forked_from`` set).

        Raises:
            RunNotFound: no run has this id.
            RunNotRetryable: it has not failed (with ``from_step``, has not ended).
            WorkflowNotFound: its workflow is neither given to this Client nor in the
                published registry.
            InvalidArgument: ``from_step`` is not in its journal.
        """
        who = resolve_identity(by, self.identity)
        found = self._db.snapshot(run_id)
        if found is None:
            raise RunNotFound(run_id)
        row = found[0]
        if from_step is not None:
            now = time.time()
            new, copied = lifecycle.fork(row, found[1], from_step, new_run_id(), now)
            new.traceparent = current_traceparent()
            created, _ = self._db.client_trigger(new, copied, trigger_audit(new, who, from_step))
            return RunResult.from_row(created)
        if row.status == "failed":
            known = list(self._workflows) if self._workflows is not None else list(self._known())
            if known and row.workflow_id not in known:
                raise WorkflowNotFound(row.workflow_id, known)
        plan = lifecycle.retry(time.time(), who)
        (updated,) = self._db.client_transition(run_id, plan, announce="retry", journal=True)
        return RunResult.from_row(updated)

    # -- reads ----------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunInfo:
        """Everything about a run (as ``Runtime.get_run``). Raises :class:`RunNotFound`."""
        found = self._db.snapshot(run_id)
        if found is None:
            raise RunNotFound(run_id)
        row, entries, signals = found
        return RunInfo.from_rows(row, entries, signals, self._db.audit_trail(run_id))

    def audit_trail(self, run_id: str) -> list[AuditInfo]:
        """Who triggered, cancelled, retried and deleted the run, oldest first; a deleted
        run's trail outlives it (``[]`` for a run id the database never had a trail for)."""
        return [AuditInfo.from_row(a) for a in self._db.audit_trail(run_id)]

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        search: str | None = None,
        waiting: str | None = None,
        oldest_first: bool = False,
        tag: str | None = None,
    ) -> list[RunResult]:
        """Runs, newest first, filtered by status (one or several), workflow id and
        ``search``: a case-insensitive substring of the run id, the workflow id or the
        payload's JSON text.

        Args:
            tag: only runs whose workflow carried this tag when they were created.
            waiting: ``"event"``: only runs suspended on ``wait_for_event`` (the ones a
                person may need to answer); ``"sleep"``: only sleeping runs.
            oldest_first: order by the last change, oldest first (the longest waits first)
                instead of by creation, newest first.

        Raises:
            InvalidArgument: an unknown status or ``waiting``, a negative limit/offset, or
                a tag that is not a name.
        """
        statuses = run_filter(status, limit=limit, offset=offset, waiting=waiting)
        check_name("tag", tag, optional=True)
        rows = self._db.query_runs(
            statuses, workflow_id, limit, offset, search or None, waiting, oldest_first, tag=tag or None
        )
        return [RunResult.from_row(r) for r in rows]

    def list_runs_with_payload(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        search: str | None = None,
        waiting: str | None = None,
        oldest_first: bool = False,
        tag: str | None = None,
    ) -> list[tuple[RunResult, Any]]:
        """:meth:`list_runs` (same arguments, same errors), each run paired with its payload
        as JSON decodes it: what a list of runs shows to tell the runs of one workflow apart."""
        statuses = run_filter(status, limit=limit, offset=offset, waiting=waiting)
        check_name("tag", tag, optional=True)
        rows = self._db.query_runs(
            statuses, workflow_id, limit, offset, search or None, waiting, oldest_first, tag=tag or None
        )
        return [(RunResult.from_row(r), codec.loads(r.payload)) for r in rows]

    def count(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        search: str | None = None,
        waiting: str | None = None,
        tag: str | None = None,
    ) -> int:
        """How many runs :meth:`list_runs` would list with these filters and no limit."""
        statuses = run_filter(status, waiting=waiting)
        check_name("tag", tag, optional=True)
        return self._db.count_runs(statuses, workflow_id, search or None, waiting, tag=tag or None)

    def count_by_status(self) -> dict[str, int]:
        """How many runs there are in each status (every status, zeros included)."""
        counts = self._db.engine_counts().runs
        return {s: int(counts.get(s, 0)) for s in STATUSES}

    def wait(self, run_id: str, timeout: float | None = None, *, until: str = "rest") -> RunResult:
        """Block until the run is at rest (``until="rest"``: ended, or suspended with
        nothing of a client still waiting for the worker: a trigger, retry or signal it has
        not picked up yet) or has ended (``until="end"``), and return where it stands.

        So ``signal`` then ``wait`` returns the state after the run took the signal, not
        the suspension it was in. Without a worker serving the file, only an already
        ended or suspended run returns. A failed run is returned, not raised: see
        :meth:`result` for that.

        Args:
            timeout: seconds; ``None`` waits for ever.
            until: ``"rest"`` (the default) or ``"end"``.

        Raises:
            RunNotFound: no such run.
            WaitTimeout: the run was not at rest (had not ended) in time (a
                ``TimeoutError`` too); the run itself goes on.
            InvalidArgument: a negative or NaN timeout, an unknown ``until``.

        Guarantees:
            No busy polling: the run is read again only when something was committed to
            the database (a check of its change counter every 5 ms, in one thread for all
            of this Client's waits), and at least every second.
        """
        return RunResult.from_row(self._wait_row(run_id, timeout, until))

    def _wait_row(self, run_id: str, timeout: float | None, until: str) -> RunRow:
        self._check_wait(run_id, timeout, until)
        deadline = None if timeout is None else time.monotonic() + timeout
        commits = self._commit_watch()
        with commits.waiting():
            while True:
                generation = commits.generation
                row, done = self._look(run_id, until)
                if done:
                    return row
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    assert timeout is not None
                    raise WaitTimeout(run_id, timeout, row.status, until=until)
                commits.wait_past(generation, REREAD_EVERY if left is None else min(left, REREAD_EVERY))

    def result(self, run_id: str, *, timeout: float | None = None) -> Any:
        """Block until the run has ended (``completed``, ``failed`` or ``cancelled``; a
        suspension is not an end) and return its output. A worker (``tarry worker``)
        serving the database drives the run meanwhile.

        Args:
            timeout: seconds; ``None`` waits for ever.

        Raises:
            RunFailed: the run ended ``failed``; ``.error`` is its :class:`RunError`
                (type, message, traceback, the ``step_id`` that failed).
            RunCancelled: the run was cancelled; ``.reason`` says why.
            WaitTimeout: it had not ended within ``timeout`` (a ``TimeoutError`` too);
                the run goes on.
            RunNotFound: no such run.
            InvalidArgument: a negative or NaN timeout.

        Guarantees:
            As :meth:`wait`: no busy polling. The output is the run's committed output, as
            ``get_run(run_id).output`` gives it.
        """
        return outcome(self._wait_row(run_id, timeout, "end"))

    def _check_wait(self, run_id: str, timeout: float | None, until: str) -> None:
        check_name("run_id", run_id)
        if timeout is not None and not timeout >= 0:
            raise InvalidArgument(f"timeout must be a number of seconds >= 0, not {timeout!r}", field="timeout")
        if until not in ("rest", "end"):
            raise InvalidArgument(f"until must be 'rest' or 'end', not {until!r}", field="until")

    def _commit_watch(self) -> CommitWatch:
        db = self._db
        with self._lock:
            if self._commits is None:
                self._commits = CommitWatch(db.data_version)
            return self._commits

    def _look(self, run_id: str, until: str) -> tuple[RunRow, bool]:
        """The run, and whether a wait ``until`` ``"rest"`` or ``"end"`` is over."""
        row, at_rest = self._db.settled(run_id)
        return row, (row.status in TERMINAL) if until == "end" else at_rest

    def workflows(self) -> list[WorkflowInfo]:
        """The workflows this Client knows: those given as ``workflows=``, else those the
        worker published in the database (empty before any worker started)."""
        if self._workflows is not None:
            described = (describe(wf) for wf in self._workflows.values())
            return [
                WorkflowInfo(
                    d["id"],
                    d["description"],
                    d["schema_kind"],
                    d["payload_schema"],
                    "local",
                    None,
                    d["schedule"],
                    tuple(d["tags"]),
                )
                for d in described
            ]
        return [
            WorkflowInfo(
                w.id,
                w.description,
                w.schema_kind,
                w.payload_schema,
                "published",
                _dt(w.published_at),
                w.schedule,
                w.tags,
            )
            for w in self._db.published_workflows()
        ]

    def engine_info(self) -> EngineInfo:
        """Which worker serves the file and how recently it was heard from, runs per
        status, client writes it has not picked up yet, and the database's size."""
        db = self._db
        leases = db.leases()
        counts = db.engine_counts()
        now = time.time()
        lease = leases[0] if leases else None
        info = lease.info if lease is not None else {}
        return EngineInfo(
            path=str(self.path),
            size_bytes=db.size_bytes(),
            schema_version=counts.schema_version,
            runs={s: int(counts.runs.get(s, 0)) for s in STATUSES},
            pending_changes=counts.pending_changes,
            worker=lease.owner if lease is not None else None,
            worker_alive=lease is not None and lease.expires_at > now,
            worker_pid=info.get("pid"),
            worker_host=info.get("host"),
            worker_started_at=_dt(lease.acquired_at) if lease is not None else None,
            heartbeat_at=_dt(lease.heartbeat_at) if lease is not None else None,
            heartbeat_age=max(0.0, now - lease.heartbeat_at) if lease is not None else None,
            lease_expires_at=_dt(lease.expires_at) if lease is not None else None,
            workers_alive=sum(1 for row in leases if row.expires_at > now),
        )

    def workers_alive(self) -> int:
        """How many workers hold a current lease on the database (one at most on SQLite).

        ``0`` means nothing is served: writes are stored and wait for the next worker."""
        now = time.time()
        return sum(1 for lease in self._db.leases() if lease.expires_at > now)

    def data_version(self) -> int:
        """A number that changes whenever anything is committed to the database (by any
        process, this Client's own writes included): poll it to refresh a view only
        when something changed. Values compare only within one Client."""
        return self._db.data_version()
