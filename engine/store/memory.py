"""MemoryStore: the default store, as in @visulima/workflow. Fast, and gone with the process.

It keeps the same contract as :class:`SQLiteStore` (the shared contract tests run on both):
rows are copied in and out, so nothing a caller holds aliases what is stored, and every
write is atomic. Use it for tests and for workflows that need no durability.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Iterable
from dataclasses import replace

import trio

from ..errors import RunAlreadyExists, RunFinished, RunNotFound, RunStateError, WorkflowError
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
    same_signal,
)
from .base import Store

__all__ = ["MemoryStore"]

log = logging.getLogger("tarry.store")


class MemoryStore(Store):
    """Keeps runs, journals and signals in dictionaries."""

    name = "memory"

    def __init__(self) -> None:
        self._runs: dict[str, RunRow] = {}
        self._entries: dict[str, list[EntryRow]] = {}
        self._signals: dict[str, list[SignalRow]] = {}
        self._signal_ids = itertools.count(1)
        self._dedup: dict[int, str] = {}  # signal id -> dedup key
        self._audit: dict[str, list[AuditRow]] = {}

    def _run(self, run_id: str) -> RunRow:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    async def create_run(
        self, row: RunRow, journal: list[EntryRow] | None = None, audit: AuditRow | None = None
    ) -> tuple[RunRow, bool]:
        await trio.lowlevel.checkpoint()
        existing = self._runs.get(row.run_id)
        if existing is not None:
            if existing.workflow_id != row.workflow_id:
                raise RunAlreadyExists(row.run_id, existing.workflow_id)
            return replace(existing), False
        self._runs[row.run_id] = replace(row)
        self._entries[row.run_id] = sorted(journal or [], key=lambda e: e.seq)
        self._signals[row.run_id] = []
        self._audit.setdefault(row.run_id, []).extend(() if audit is None else [replace(audit)])
        return replace(row), True

    async def write(self, write: Write) -> bool:
        await trio.lowlevel.checkpoint()
        return self._apply(write)

    def write_behind(self, write: Write) -> None:
        try:
            self._apply(write)
        except WorkflowError:
            log.warning("a write-behind for run %s failed", write.run_id, exc_info=True)

    def _apply(self, write: Write) -> bool:
        run = self._run(write.run_id)
        if write.require is not None and run.status not in write.require:
            return False
        if write.delete:
            self._delete([write.run_id], keep_audit=True)
            self._audit[write.run_id].extend(replace(a) for a in write.audit)
            return True
        signals = {s.id: s for s in self._signals[write.run_id]}
        for signal_id, _ in write.consume:
            signal = signals.get(signal_id)
            if signal is None or signal.consumed_at is not None:
                raise RunStateError(
                    f"signal {signal_id} of run {write.run_id!r} was already consumed", run_id=write.run_id
                )
        # All checks passed: apply (nothing below can fail).
        for signal_id, step_id in write.consume:
            signals[signal_id].consumed_at = write.updated_at
            signals[signal_id].consumed_by = step_id
        entries = self._entries[write.run_id]
        if write.truncate_from is not None:
            entries[:] = [e for e in entries if e.seq < write.truncate_from]
        # Entries are value objects nobody mutates after writing them: kept as given, in
        # seq order (a gather's steps may commit out of order and leave a gap).
        for entry in write.entries:
            at = bisect.bisect_left(entries, entry.seq, key=lambda e: e.seq)
            if at < len(entries) and entries[at].seq == entry.seq:
                entries[at] = entry
            else:
                entries.insert(at, entry)
        for target, event, payload in write.signals:
            if target in self._runs and self._runs[target].status not in TERMINAL:
                self._signals[target].append(
                    SignalRow(next(self._signal_ids), target, event, payload, write.updated_at)
                )
        if write.audit:
            self._audit[write.run_id].extend(replace(a) for a in write.audit)
        for column, value in write.run.items():
            setattr(run, column, value)
        if write.entries:
            run.last_step = write.entries[-1].step_id
        run.updated_at = write.updated_at
        return True

    async def add_signal(
        self,
        run_id: str,
        event: str,
        payload: str,
        sent_at: float,
        dedup_key: str | None = None,
        by: str | None = None,
    ) -> SignalRow:
        await trio.lowlevel.checkpoint()
        run = self._run(run_id)
        if dedup_key is not None:
            for signal in self._signals[run_id]:
                if self._dedup.get(signal.id) == dedup_key:
                    return same_signal(replace(signal), event, payload, dedup_key)
        if run.status in TERMINAL:
            raise RunFinished(run_id, run.status, "signal")
        signal = SignalRow(next(self._signal_ids), run_id, event, payload, sent_at, sent_by=by)
        self._signals[run_id].append(signal)
        if dedup_key is not None:
            self._dedup[signal.id] = dedup_key
        return replace(signal, run_waits_for=run.wait_event)

    async def transition(
        self, run_id: str, plan: Plan, *, journal: bool = False, descendants: bool = False
    ) -> list[RunRow]:
        await trio.lowlevel.checkpoint()
        tree = RunTree(replace(self._run(run_id)))
        if journal:
            tree.journal = list(self._entries[run_id])
        if descendants:
            low, high = descendant_range(run_id)
            candidates = (replace(r) for key, r in self._runs.items() if low <= key < high)
            tree.descendants = descendants_of(run_id, candidates)
        writes = plan(tree)
        # Nothing awaits between the read and the writes, so every require still holds.
        for change in writes:
            if not self._apply(change):
                raise RunStateError(f"run {change.run_id!r} changed under a transition", run_id=change.run_id)
        return [replace(self._runs[change.run_id]) for change in writes if not change.delete]

    async def get_run(self, run_id: str) -> RunRow | None:
        await trio.lowlevel.checkpoint()
        run = self._runs.get(run_id)
        return None if run is None else replace(run)

    async def load(self, run_id: str) -> tuple[RunRow, list[EntryRow], list[SignalRow]] | None:
        await trio.lowlevel.checkpoint()
        run = self._runs.get(run_id)
        if run is None:
            return None
        entries = [replace(e) for e in self._entries[run_id]]
        inbox = [replace(s) for s in self._signals[run_id] if s.consumed_at is None]
        return replace(run), entries, inbox

    async def history(self, run_id: str) -> tuple[list[EntryRow], list[SignalRow]]:
        await trio.lowlevel.checkpoint()
        self._run(run_id)
        return [replace(e) for e in self._entries[run_id]], [replace(s) for s in self._signals[run_id]]

    async def audit(self, run_id: str) -> list[AuditRow]:
        await trio.lowlevel.checkpoint()
        if run_id not in self._audit:  # a deleted run's trail outlives it
            self._run(run_id)
        return [replace(a) for a in self._audit[run_id]]

    async def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        workflow_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[RunRow]:
        await trio.lowlevel.checkpoint()
        statuses = {status} if isinstance(status, str) else (set(status) if status is not None else None)
        rows = [
            r
            for r in reversed(self._runs.values())
            if (statuses is None or r.status in statuses)
            and (workflow_id is None or r.workflow_id == workflow_id)
            and (tag is None or tag in decode_tags(r.tags))
        ]
        rows.sort(key=lambda r: r.created_at, reverse=True)
        end = None if limit is None else offset + limit
        return [replace(r) for r in rows[offset:end]]

    async def count_by_status(self) -> dict[str, int]:
        await trio.lowlevel.checkpoint()
        counts: dict[str, int] = {}
        for run in self._runs.values():
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts

    async def due_runs(self, until: float, limit: int = 10_000) -> list[tuple[str, float]]:
        await trio.lowlevel.checkpoint()
        due = [
            (r.run_id, r.wake_at)
            for r in self._runs.values()
            if r.status == "suspended" and r.wake_at is not None and r.wake_at <= until
        ]
        due.sort(key=lambda item: item[1])
        return due[:limit]

    async def next_wake_after(self, after: float) -> float | None:
        await trio.lowlevel.checkpoint()
        later = [
            r.wake_at
            for r in self._runs.values()
            if r.status == "suspended" and r.wake_at is not None and r.wake_at > after
        ]
        return min(later, default=None)

    async def runs_with_signals(self) -> list[str]:
        await trio.lowlevel.checkpoint()
        return [
            r.run_id
            for r in self._runs.values()
            if r.status == "suspended"
            and r.wait_event is not None
            and any(s.event in r.wait_event.split("\x1f") and s.consumed_at is None for s in self._signals[r.run_id])
        ]

    async def prune(self, before: float, statuses: list[str], limit: int) -> int:
        await trio.lowlevel.checkpoint()
        doomed = [
            r.run_id
            for r in self._runs.values()
            if r.status in TERMINAL and r.status in statuses and r.updated_at < before
        ][:limit]
        self._delete(doomed)
        return len(doomed)

    def _delete(self, run_ids: list[str], *, keep_audit: bool = False) -> None:
        for run_id in run_ids:
            del self._runs[run_id], self._entries[run_id]
            if not keep_audit:
                del self._audit[run_id]
            for signal in self._signals.pop(run_id):
                self._dedup.pop(signal.id, None)

    async def running_runs(self) -> list[str]:
        await trio.lowlevel.checkpoint()
        return [r.run_id for r in self._runs.values() if r.status == "running"]
