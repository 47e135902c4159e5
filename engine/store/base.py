"""The store protocol: the durable boundary between the engine and its database.

A store keeps rows (:mod:`engine.journal`) and knows nothing of workflows, contexts or
scheduling. Its contract, checked by the same test suite for every store:

- When a write method returns, the change is committed (durable to the degree the store
  promises: for SQLite, ``synchronous`` decides what survives a power cut).
- :meth:`Store.write` is atomic: all of a :class:`Write` or none of it.
- Nothing a store returns is shared with the store's own state: mutating a returned row
  never changes what is stored.
- Errors are :class:`engine.errors.WorkflowError` subclasses (``RunNotFound``,
  ``RunFinished``, ``StoreBusy`` ...), never driver exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from ..journal import EntryRow, RunRow, SignalRow, Write

__all__ = ["Store"]


class Store(ABC):
    """Abstract base of :class:`MemoryStore` and :class:`SQLiteStore`."""

    #: A short description for logs and errors ("memory", "sqlite:/path/to.db").
    name: str = "store"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create or migrate the schema, start threads). Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources. Idempotent."""

    # -- writes ---------------------------------------------------------------------------

    @abstractmethod
    async def create_run(self, row: RunRow) -> tuple[RunRow, bool]:
        """Insert a new run; return ``(row, True)``.

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
    async def add_signal(self, run_id: str, event: str, payload: str, sent_at: float) -> SignalRow:
        """Append a signal to a run's inbox.

        Raises:
            RunNotFound: no such run.
            RunFinished: the run has ended; nothing is written.
        """

    @abstractmethod
    async def request_cancel(self, run_id: str, reason: str, at: float) -> RunRow:
        """Mark a run as asked to cancel; a run that is not running ends ``cancelled`` at once.

        Returns the row after the change: ``cancelled`` if no process was running it,
        else still ``running`` with ``cancel_reason`` set for its owner to act on.

        Raises:
            RunNotFound, RunFinished.
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
    async def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[RunRow]:
        """Runs, most recently created first, filtered by status(es) and workflow."""

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
    async def running_runs(self) -> list[str]:
        """Runs whose status is ``running`` (mid-flight, or interrupted by a crash)."""
