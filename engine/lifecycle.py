"""A run's transitions, as data: what cancel, retry, fork, delete and a child's end write.

Every function here is pure: it takes the rows a transition depends on, as read inside
the transaction that will apply it, and returns the :class:`~tarry.journal.Write` s to
make (or raises the typed error that says why the transition is not allowed). The stores
only apply writes; the runtime, the client and the actor only ask for transitions. So a
rule is written once, here, and is the same whether the run's actor is warm in this
process, passivated, owned by another process, or nobody's (its process died).

Stores call these through :meth:`tarry.store.base.Store.transition`, which reads a
:class:`RunTree` and applies the writes in one transaction, so a transition never sees
a run half-changed by another, and a crash leaves it whole or not at all.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from .errors import InvalidArgument, RunFinished, RunNotRetryable, RunStillActive
from .journal import (
    ACTIVE,
    TERMINAL,
    AuditRow,
    EntryRow,
    Plan,
    RunRow,
    RunTree,
    Write,
    cancel_audit,
    retry_audit,
)

__all__ = [
    "CHILD_EVENT",
    "cancel",
    "child_outcome",
    "delete",
    "fork",
    "retry",
    "retry_cut",
]

#: The event a child's outcome is sent to its parent under (``tarry.child:<child id>``).
CHILD_EVENT = "tarry.child:"


def child_outcome(child: RunRow, status: str, *, output: str | None, error: Any) -> tuple[str, str, str]:
    """The signal that carries a child run's end to its parent, sent in the same write
    that ends the child (so a parent never waits for a child that has ended): a
    ``(parent run id, event, payload JSON)`` for :attr:`Write.signals`.

    The parent's ``ctx.child`` wait takes it; a failed or cancelled child raises
    ``ChildFailed`` there. A parent that has ended by then gets nothing (a store drops a
    signal to an ended run).
    """
    assert child.parent_run_id is not None
    outcome = {"status": status, "output": output, "error": error, "child_run_id": child.run_id}
    return child.parent_run_id, CHILD_EVENT + child.run_id, orjson.dumps(outcome).decode()


def _ended_cancelled(row: RunRow, reason: str, at: float) -> Write:
    """End a run that nobody is executing (suspended) as ``cancelled``, telling its parent."""
    run = {
        "status": "cancelled",
        "cancel_reason": reason,
        "pending": None,
        "wake_at": None,
        "wait_event": None,
        "error": None,
    }
    write = Write(row.run_id, at, run=run, require=frozenset({"suspended"}))
    if row.parent_run_id is not None:
        error = {"type": "RunCancelled", "message": reason}
        write.signals.append(child_outcome(row, "cancelled", output=None, error=error))
    return write


def cancel(reason: str, at: float, by: str | None = None) -> Plan:
    """Cancel a run and every active run it started (children, grandchildren...).

    A suspended run (sleeping, waiting, passivated, or held by a process that died) ends
    ``cancelled`` in this transaction, and its parent, if it has one and is not being
    cancelled too, gets the outcome (its ``ctx.child`` raises ``ChildFailed``). A
    ``running`` run gets the request (``cancel_reason``): the step in progress belongs to
    whoever executes it, which interrupts it and ends the run ``cancelled`` (with its
    outcome to its parent in that final write); a run left ``running`` by a dead process
    ends so when it is recovered. ``by`` (who asked) goes to the run's audit trail.

    Raises:
        RunFinished: the run has already ended (nothing is written).
    """

    def plan(tree: RunTree) -> list[Write]:
        root = tree.root
        if root.status in TERMINAL:
            raise RunFinished(root.run_id, root.status, "cancel")
        writes = []
        for row in (root, *tree.descendants):
            if row.status not in ACTIVE:
                continue
            why = reason if row is root else f"its parent run {row.parent_run_id!r} was cancelled"
            if row.status == "running":
                writes.append(Write(row.run_id, at, run={"cancel_reason": why}, require=frozenset({"running"})))
            else:
                writes.append(_ended_cancelled(row, why, at))
        if by is not None:
            writes[0].audit.append(cancel_audit(root.run_id, by, at, reason))
        return writes

    return plan


def retry(at: float, by: str | None = None) -> Plan:
    """Put a failed run back to ``running``: its journal cut where :func:`retry_cut`
    says (the failed step runs again, completed ones are replayed), ``attempt`` + 1, and a
    fresh quarantine count. ``by`` (who asked) goes to the run's audit trail.

    Raises:
        RunNotRetryable: the run has not failed (nothing is written).
    """

    def plan(tree: RunTree) -> list[Write]:
        row = tree.root
        if row.status != "failed":
            raise RunNotRetryable(row.run_id, row.status)
        cut = retry_cut(row.error, [(e.seq, e.step_id, e.status) for e in tree.journal])
        run = {
            "status": "running",
            "error": None,
            "output": None,
            "attempt": row.attempt + 1,
            "cancel_reason": None,
            "recoveries": 0,
            "recovery_mark": None,
        }
        audit = [] if by is None else [retry_audit(row.run_id, by, at, row.attempt + 1)]
        return [Write(row.run_id, at, run=run, truncate_from=cut, require=frozenset({"failed"}), audit=audit)]

    return plan


def delete(at: float, by: str | None = None) -> Plan:
    """Delete an ended run, with its journal and signals; the runs it started stay (each
    is deleted on its own, or by a prune). The run's audit trail outlives it, with ``by``
    (who asked) recorded as a ``delete`` (a prune deletes the trail too).

    Raises:
        RunStillActive: the run has not ended (nothing is written): cancel it first.
    """

    def plan(tree: RunTree) -> list[Write]:
        row = tree.root
        if row.status not in TERMINAL:
            raise RunStillActive(row.run_id, row.status, "delete")
        audit = [] if by is None else [AuditRow(row.run_id, "delete", by, at, None)]
        return [Write(row.run_id, at, require=TERMINAL, delete=True, audit=audit)]

    return plan


def fork(
    row: RunRow, entries: list[EntryRow], from_step: str, run_id: str, now: float
) -> tuple[RunRow, list[EntryRow]]:
    """A new run ``run_id`` of ``row``'s workflow and payload whose journal is ``entries``
    before the entry of ``from_step``: a replay returns their recorded results, and
    ``from_step`` and everything after it run again. ``forked_from`` names the original.

    Raises:
        RunNotRetryable: the original has not ended.
        InvalidArgument: no entry of the journal has that step id (the message lists them).
    """
    if row.status not in TERMINAL:
        raise RunNotRetryable(row.run_id, row.status, from_step)
    at = next((e.seq for e in entries if e.step_id == from_step), None)
    if at is None:
        known = ", ".join(repr(e.step_id) for e in entries) or "none"
        raise InvalidArgument(
            f"run {row.run_id!r} has no step {from_step!r} in its journal (its steps: {known})", run_id=row.run_id
        )
    copied = [replace(e, run_id=run_id) for e in entries if e.seq < at]
    new = RunRow(run_id, row.workflow_id, "running", row.payload, now, now, forked_from=row.run_id, tags=row.tags)
    return new, copied


def retry_cut(error: str | None, entries: list[tuple[int, str, str]]) -> int:
    """Where a retry truncates a failed run's journal (``entries``: ``(seq, step_id,
    status)`` in seq order; ``error``: the run's error JSON).

    At the failed entry of the step that ended the run (with a ``gather``, the siblings
    journaled after it run again too); else after the trailing failed entries. A run that
    failed on a rule (non-determinism, a deadline) keeps its whole journal and replays it
    under the fixed code.
    """
    data = orjson.loads(error) if error else None
    step_id = data.get("step_id") if isinstance(data, dict) else None
    for seq, entry_step, status in entries:
        if entry_step == step_id and status == "failed":
            return seq
    cut = len(entries)
    while cut > 0 and entries[cut - 1][2] == "failed":
        cut -= 1
    if cut < len(entries):
        return entries[cut][0]
    return entries[-1][0] + 1 if entries else 0
