"""The store protocol: the durable boundary between the engine and its database.

A store keeps rows (:mod:`tarry.journal`) and knows nothing of workflows, contexts or
scheduling. Its contract, checked by the same test suite for every store:

- When a write method returns, the change is committed (durable to the degree the store
  promises: for SQLite, ``synchronous`` decides what survives a power cut).
- :meth:`Store.write` is atomic: all of a :class:`Write` or none of it.
- Nothing a store returns is shared with the store's own state: mutating a returned row
  never changes what is stored.
- Errors are :class:`tarry.errors.WorkflowError` subclasses (``RunNotFound``,
  ``RunFinished``, ``StoreBusy`` ...), never driver exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..journal import AuditRow, EntryRow, Plan, RunRow, SignalRow, Write

__all__ = ["Change", "ChangeWatch", "EngineCounts", "LeaseRow", "PublishedWorkflow", "SharedStore", "Store"]


class Store(ABC):
    """Abstract base of :class:`MemoryStore` and :class:`SQLiteStore`."""

    #: A short description for logs and errors ("memory", "sqlite:/path/to.db").
    name: str = "store"

    #: Told of each transaction that committed writes: ``(writes in it, seconds it took)``.
    #: Called on the thread that committed (the event loop or a writer thread), so it must
    #: be quick and thread-safe; ``None`` (the default) costs nothing (``tarry worker
    #: --metrics`` sets it).
    commit_hook: Callable[[int, float], None] | None = None

    def committed(self, writes: int, seconds: float) -> None:
        """Report a committed transaction to :attr:`commit_hook` (the stores' one way to)."""
        hook = self.commit_hook
        if hook is not None:
            hook(writes, seconds)

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create or migrate the schema, start threads). Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources. Idempotent."""

    # -- writes ---------------------------------------------------------------------------

    @abstractmethod
    async def create_run(
        self, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
    ) -> tuple[RunRow, bool]:
        """Insert a new run, with ``journal`` (a fork's copied entries) and ``audit`` (who
        asked for it) in the same transaction; return ``(row, True)``.

        If ``row.run_id`` exists for the same workflow, nothing is written and the stored
        row comes back with ``False`` (an idempotent trigger).

        Cancellation is all or nothing: a call that raises ``trio.Cancelled`` created
        nothing, and once the run is created the call returns (the runtime starts its
        actor before its next checkpoint, so no cancelled trigger leaves a run undriven).

        Raises:
            RunAlreadyExists: the id belongs to a run of another workflow.
        """

    @abstractmethod
    async def write(self, write: Write) -> bool:
        """Apply one :class:`Write` atomically; ``False`` when its ``require`` did not hold.

        Raises:
            RunNotFound: no such run.
            RunStateError: a signal to consume was already consumed (nothing written).
        """

    @abstractmethod
    def write_behind(self, write: Write) -> None:
        """Queue a :class:`Write` without waiting for its commit.

        For writes that replay can always redo (a sleep that ended: its wake time is already
        committed). It commits before, or together with, any write queued after it; if it
        fails, the failure is logged and the stored state is what replay starts from.
        """

    @abstractmethod
    async def add_signal(
        self,
        run_id: str,
        event: str,
        payload: str,
        sent_at: float,
        dedup_key: str | None = None,
        by: str | None = None,
    ) -> SignalRow:
        """Append a signal sent ``by`` someone to a run's inbox. With a ``dedup_key`` the run already has a
        signal under (consumed or not), nothing is added: that signal comes back with
        ``duplicate=True`` (the key holds for the run's lifetime).

        Raises:
            RunNotFound: no such run.
            RunFinished: the run has ended; nothing is written.
        """

    @abstractmethod
    async def transition(
        self, run_id: str, plan: Plan, *, journal: bool = False, descendants: bool = False
    ) -> list[RunRow]:
        """Apply a lifecycle transition (:mod:`tarry.lifecycle`) in one transaction.

        Reads the run's :class:`RunTree` (its journal if ``journal``, every run it started,
        recursively, if ``descendants``), calls ``plan`` with it, and applies the writes it
        returns, in order, all or nothing. The store holds no rule of its own: what the
        transition does is the plan's. A signal a write sends to another run (a child's
        outcome to its parent) is delivered as :meth:`write` delivers it.

        Returns the rows of the runs written, as they are after the transition, in the
        order of the writes (the run itself first); a deleted run has none.

        Raises:
            RunNotFound: no such run.
            Whatever ``plan`` raises (``RunFinished``, ``RunNotRetryable`` ...): nothing
                is written.
            RunStateError: a write's ``require`` did not hold although the tree was read in
                the same transaction (a bug in the plan); nothing is written.
        """

    # -- reads ----------------------------------------------------------------------------

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRow | None:
        """The run's row, or ``None``."""

    @abstractmethod
    async def load(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        """What an actor needs to (re)activate: the row, the journal in order, and the
        unconsumed signals oldest first. ``None`` for an unknown run."""

    @abstractmethod
    async def history(self, run_id: str) -> tuple[list[EntryRow], list[SignalRow]]:
        """The journal in order and every signal (consumed or not), oldest first."""

    @abstractmethod
    async def audit(self, run_id: str) -> list[AuditRow]:
        """Who asked for the run's triggers, cancels and retries, oldest first."""

    async def run_info(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow], list[AuditRow]] | None:
        """The run, its journal, every signal and its audit trail (``None``: no such run):
        what ``Runtime.get_run`` shows. Stores override it to read them in one go."""
        row = await self.get_run(run_id)
        if row is None:
            return None
        entries, signals = await self.history(run_id)
        return row, entries, signals, await self.audit(run_id)

    @abstractmethod
    async def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[RunRow]:
        """Runs, most recently created first, filtered by status(es), workflow and a tag
        in ``RunRow.tags``."""

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """How many runs there are in each status."""

    @abstractmethod
    async def due_runs(self, until: float, limit: int = 10_000) -> list[tuple[str, float]]:
        """``(run_id, wake_at)`` of suspended runs whose wake time is at or before ``until``,
        earliest first."""

    @abstractmethod
    async def next_wake_after(self, after: float) -> float | None:
        """The earliest wake time of a suspended run that is later than ``after``."""

    @abstractmethod
    async def runs_with_signals(self) -> list[str]:
        """Suspended runs waiting for an event that has an unconsumed signal in the inbox."""

    @abstractmethod
    async def prune(self, before: float, statuses: list[str], limit: int) -> int:
        """Delete up to ``limit`` ended runs (status in ``statuses``, all of them terminal)
        that last changed before ``before``, with their journals, signals and change rows,
        in one transaction; return how many. Active runs are never deleted."""

    @abstractmethod
    async def running_runs(self) -> list[str]:
        """Runs whose status is ``running`` (mid-flight, or interrupted by a crash)."""


# -- what processes share: the worker's seat, the change feed, the registry, clients' verbs ----


@dataclass(slots=True)
class LeaseRow:
    """A worker's lease: who (``owner``), since when, and until when it holds it."""

    name: str
    owner: str
    acquired_at: float
    heartbeat_at: float
    expires_at: float
    info: dict[str, Any]


@dataclass(slots=True)
class Change:
    """One change another process committed for a worker to act on, with the signal it
    announces and the run as it is now (``run`` is ``None`` for a run that is gone).

    ``kind`` is ``trigger``, ``signal``, ``cancel``, ``retry``, or ``claim`` (a run this
    worker just took over from a worker whose lease expired, or that no worker owned)."""

    seq: int
    kind: str
    run_id: str
    signal: SignalRow | None
    run: RunRow | None


@dataclass(slots=True)
class PublishedWorkflow:
    """A workflow a serving worker published: what a Client without the code validates with."""

    id: str
    description: str | None
    schema_kind: str
    payload_schema: dict[str, Any] | None
    published_at: float
    published_by: str | None
    schedule: dict[str, Any] | None = None  # {"cron", "tz", "catch_up"} of a scheduled workflow
    tags: tuple[str, ...] = ()  # what its runs carry: a Client without the code tags its triggers


@dataclass(slots=True)
class EngineCounts:
    """Runs per status, clients' changes no worker has taken yet, and the schema version."""

    runs: dict[str, int]
    pending_changes: int
    schema_version: int


class ChangeWatch(ABC):
    """Blocks a plain thread until another process may have committed something.

    A hint only ("look now"): the store's changes (:meth:`SharedStore.changes_after`)
    are the source of truth, so a missed hint costs latency, never data.
    """

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; ``True`` when something may have changed."""

    @abstractmethod
    def close(self) -> None:
        """Release the watch (its socket or connection). Idempotent."""

    #: Where clients nudge this watch (published in the worker's lease info), if anywhere.
    address: str | None = None


class SharedStore(Store):
    """A store that several processes share: workers serve it, clients write to it.

    Everything the worker (:mod:`tarry.worker`, :mod:`tarry.lease`,
    :mod:`tarry.changes`), the :class:`tarry.Client` and the dashboard need beyond the
    runtime's :class:`Store`. These methods are **synchronous and thread-safe**: clients
    call them from their own threads, and the worker from trio worker threads (they are
    not on the hot path, so a thread hop each costs nothing that matters). Writes are
    committed when they return, like every store write.

    Two ways to serve a database, told by :attr:`exclusive`:

    - ``True`` (SQLite): one worker at a time holds the lease ``"worker"``; a second one
      stands by and takes over when that lease expires. The serving worker drives every run.
    - ``False`` (PostgreSQL): any number of workers, each with a lease of its own (its
      heartbeat). A run is owned by one worker at a time; a worker takes unowned runs and
      the runs of workers whose lease expired (:meth:`changes_after` returns them as
      ``claim``), and only ever drives and commits for the runs it owns.

    After :meth:`set_owner`, a store commits only for that owner: once its lease is gone
    (another worker took over), its writes raise :class:`LeaseLost` and ``on_lost`` is
    called once, so a stalled worker never writes over the one that replaced it. With a
    non-exclusive store the owner also scopes the runtime's reads and creates: runs it
    creates are its own, and ``running_runs``, ``due_runs``, ``next_wake_after`` and
    ``runs_with_signals`` see only its own runs (without an owner, a plain Runtime on the
    store acts as its only process and sees every run).
    """

    #: One worker at a time (a standby waits), or many (runs are owned one by one).
    exclusive: bool = True

    #: What a Client opens to reach this database (a path or a ``postgresql://`` URL).
    url: str = ""

    #: A worker's default lease: seconds without a heartbeat before others take over.
    lease_ttl: float = 4.0

    #: Heartbeats per ``ttl``: a worker renews its lease every ``ttl / lease_renewals``.
    lease_renewals: float = 4.0

    # -- the worker's lease -----------------------------------------------------------------

    def lease_name(self, owner: str) -> str:
        """The lease ``owner`` competes for: the one ``"worker"`` lease of an exclusive
        store, else a lease of the worker's own."""
        return "worker" if self.exclusive else f"worker:{owner}"

    @abstractmethod
    def lease_acquire(
        self, name: str, owner: str, now: float, ttl: float, info: dict[str, Any]
    ) -> tuple[bool, LeaseRow | None]:
        """Take lease ``name`` if it is free, expired or already ``owner``'s.

        Returns ``(True, previous)`` (the row it replaced, if any) or ``(False, holder)``.
        """

    @abstractmethod
    def lease_renew(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Extend ``owner``'s lease; ``False`` when it is no longer theirs."""

    @abstractmethod
    def lease_release(self, name: str, owner: str, now: float) -> None:
        """Expire ``owner``'s lease now (its runs are free for the others at once)."""

    @abstractmethod
    def leases(self) -> list[LeaseRow]:
        """Every worker lease, current or expired, the most recent heartbeat first."""

    @abstractmethod
    def set_owner(self, owner: str | None, on_lost: Callable[[], None] | None = None) -> None:
        """Commit only as ``owner`` from now on (``None``: no fence, a plain runtime).

        ``on_lost`` is called once, from whichever thread found out, when a commit was
        refused because ``owner`` no longer holds its lease. With a non-exclusive store a
        write to a run another worker owns is refused too (:class:`LeaseLost` naming that
        worker as ``holder``), without ``on_lost``: the worker goes on with its own runs."""

    # -- the registry --------------------------------------------------------------------------

    @abstractmethod
    def publish_workflows(self, workflows: list[dict[str, Any]], owner: str, now: float) -> None:
        """Record the workflows ``owner`` serves (``id``, ``description``, ``schema_kind``,
        ``payload_schema``), replacing what that owner published before."""

    @abstractmethod
    def published_workflows(self) -> list[PublishedWorkflow]:
        """Every published workflow, by id (one row per id: the latest publication)."""

    # -- the change feed ---------------------------------------------------------------------

    @abstractmethod
    def last_change(self) -> int:
        """The newest change's ``seq`` (0 for none): a worker's recovery covers up to it."""

    @abstractmethod
    def changes_after(self, after: int, limit: int) -> list[Change]:
        """Changes for this store's owner after ``seq`` ``after``, oldest first.

        With a non-exclusive store this first claims up to ``limit`` runs that nobody
        (alive) owns, returned as ``claim`` changes ahead of the rest; and since its
        sequence numbers are taken before their transactions commit, it returns every
        change not yet forgotten nor handed out, whatever ``after`` says."""

    @abstractmethod
    def forget_changes(self, upto: int) -> None:
        """Delete the changes up to ``upto`` this owner has acted on (a non-exclusive
        store: only those :meth:`changes_after` handed out)."""

    @abstractmethod
    def watch(self, poll_interval: float, *, wake_socket: bool = True) -> ChangeWatch:
        """A :class:`ChangeWatch` for a worker's watcher thread, checking at least every
        ``poll_interval`` seconds (``wake_socket=False``: no socket for clients' nudges,
        where a store has one)."""

    # -- clients' verbs: each change and its notice to the workers in one transaction ---------

    @abstractmethod
    def client_trigger(
        self, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
    ) -> tuple[RunRow, bool]:
        """:meth:`Store.create_run`, announced to the workers."""

    @abstractmethod
    def client_signal(
        self,
        run_id: str,
        event: str,
        payload: str,
        sent_at: float,
        dedup_key: str | None = None,
        by: str | None = None,
    ) -> SignalRow:
        """:meth:`Store.add_signal`, announced to the run's worker."""

    @abstractmethod
    def client_prune(self, before: float, statuses: list[str], limit: int) -> int:
        """:meth:`Store.prune`, from another process."""

    @abstractmethod
    def client_transition(
        self, run_id: str, plan: Plan, *, announce: str, journal: bool = False, descendants: bool = False
    ) -> list[RunRow]:
        """:meth:`Store.transition`, from another process: every run written gets a change
        of kind ``announce`` (``"cancel"``, ``"retry"``) for its worker, and every signal a
        write sends (a cancelled child's outcome to its parent) a ``"signal"`` change, in
        the same transaction."""

    # -- clients' reads ----------------------------------------------------------------------

    @abstractmethod
    def snapshot(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        """A run, its journal and every signal, from one snapshot (``None``: no such run)."""

    @abstractmethod
    def settled(self, run_id: str) -> tuple[RunRow, bool]:
        """The run, and whether it is at rest: ended, or suspended with no change of a
        client still waiting for a worker (a change not taken, or a signal its wait takes).

        Raises:
            RunNotFound.
        """

    @abstractmethod
    def run_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids that start with ``prefix`` (``prefix`` itself first when
        it is a whole id), in order: a range seek on the run id's index
        (:func:`tarry.journal.prefix_range`), never a scan."""

    @abstractmethod
    def audit_trail(self, run_id: str) -> list[AuditRow]:
        """:meth:`Store.audit` for a plain thread (a Client)."""

    @abstractmethod
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
        """Runs newest first (``oldest_first``: the longest unchanged first), filtered by
        status, workflow, kind of wait (``"event"``, ``"sleep"``), a case-insensitive
        substring of the run id, workflow id or payload text, and a tag in ``RunRow.tags``."""

    @abstractmethod
    def count_runs(
        self,
        statuses: list[str] | None,
        workflow_id: str | None,
        search: str | None = None,
        waiting: str | None = None,
        *,
        tag: str | None = None,
    ) -> int:
        """How many runs :meth:`query_runs` would return with no limit."""

    @abstractmethod
    def engine_counts(self) -> EngineCounts:
        """Runs per status, changes not yet taken by a worker, and the schema version."""

    @abstractmethod
    def data_version(self) -> int:
        """A number that changes whenever anything is committed, by any process. Values
        compare only within one store object: poll it to refresh a view only on change."""

    def size_bytes(self) -> int | None:
        """The database's size on disk, where the store can tell."""
        return None

    @abstractmethod
    def open_sync(self) -> None:
        """:meth:`Store.open` for a plain thread (a Client). Idempotent."""

    @abstractmethod
    def close_sync(self) -> None:
        """:meth:`Store.close` for a plain thread (a Client). Idempotent."""
