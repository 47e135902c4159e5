"""The dashboard's one door to the engine: a ``tarry.Client`` (or an object shaped like one).

Every call here is synchronous and may block on the database, so screens call them only from
Textual thread workers, never on the event loop. Errors are the engine's typed
``WorkflowError`` subclasses, passed through unchanged for the screens to show.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tarry import Client, RunInfo, RunResult

__all__ = ["FILTERS", "PAGE_SIZE", "Filter", "Page", "Source", "split_search"]

#: Rows the runs table holds at once; older runs are one page key away.
PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class Filter:
    """One view of the runs table, bound to one key."""

    name: str
    key: str
    title: str
    status: str | None = None
    #: Only runs suspended on ``wait_for_event`` (the "needs approval" view), oldest first.
    approval: bool = False
    #: The title where the full ones do not fit on one line (80 columns).
    short: str = ""


FILTERS: tuple[Filter, ...] = (
    Filter("all", "1", "all"),
    Filter("running", "2", "running", "running", short="run"),
    Filter("suspended", "3", "suspended", "suspended", short="susp"),
    Filter("approval", "4", "needs approval", "suspended", approval=True, short="approve"),
    Filter("failed", "5", "failed", "failed", short="fail"),
    Filter("completed", "6", "completed", "completed", short="done"),
    Filter("cancelled", "7", "cancelled", "cancelled", short="cancel"),
)
FILTERS_BY_NAME = {f.name: f for f in FILTERS}


@dataclass(slots=True)
class Page:
    """One page of the runs table and the counts shown above it."""

    runs: list[RunResult]
    counts: dict[str, int]
    offset: int
    #: Runs matching the filter (``None`` when unknown, e.g. with a search).
    total: int | None
    #: Runs waiting for an event (the "needs approval" count of the header).
    approvals: int | None = None
    #: Each run's payload, by run id (the table's payload column).
    payloads: dict[str, Any] = field(default_factory=dict)


class Source:
    """Reads and verbs for the dashboard, over ``client``.

    Args:
        client: a ``tarry.Client``; the dashboard closes it on exit when ``owns`` is true.
        owns: whether :meth:`close` closes the client.
    """

    def __init__(self, client: Any, *, owns: bool = False) -> None:
        self.client = client
        self.owns = owns

    @classmethod
    def open(cls, target: str | os.PathLike[str] | Any) -> Source:
        """A source over an existing client, or over a new ``tarry.Client(path)``.

        Raises:
            DatabaseMissing: no file at ``path`` (a dashboard never creates one: a typo in
                ``--db`` is an error, not a new empty database).
            NotATarryDatabase, SchemaTooNew: as ``tarry.Client``.
        """
        if isinstance(target, str | os.PathLike):
            return cls(Client(os.fspath(target), create=False), owns=True)
        return cls(target, owns=False)

    def close(self) -> None:
        if self.owns:
            self.client.close()

    # -- reads ------------------------------------------------------------------------------

    def data_version(self) -> int:
        """Changes whenever another connection commits to the database."""
        return int(self.client.data_version())

    def counts(self) -> dict[str, int]:
        return dict(self.client.count_by_status())

    def page(self, flt: Filter, *, offset: int = 0, search: str | None = None, limit: int = PAGE_SIZE) -> Page:
        """The runs of one page of ``flt`` (newest first; the longest waits first for approvals).
        A ``tag:NAME`` word in ``search`` keeps the runs carrying tag NAME (see
        :func:`split_search`)."""
        counts = self.counts()
        tag, search = split_search(search)
        tagged: dict[str, Any] = {"tag": tag} if tag else {}
        approvals = self.client.count(waiting="event")
        if flt.approval:
            found = self.client.list_runs_with_payload(
                waiting="event", oldest_first=True, limit=limit, offset=offset, search=search, **tagged
            )
            total = (
                approvals if search is None and not tag else self.client.count(waiting="event", search=search, **tagged)
            )
        else:
            found = self.client.list_runs_with_payload(
                status=flt.status, limit=limit, offset=offset, search=search, **tagged
            )
            if tag and not search:
                total = self.client.count(status=flt.status, tag=tag)
            elif search:
                total = None
            elif flt.status is None:
                total = sum(counts.values())
            else:
                total = counts.get(flt.status, 0)
        runs = [run for run, _ in found]
        payloads = {run.run_id: payload for run, payload in found}
        return Page(runs, counts, offset, total, approvals=approvals, payloads=payloads)

    def serving(self) -> bool:
        """Whether a worker serves the database now (holds a current lease)."""
        return int(self.client.workers_alive()) > 0

    def run(self, run_id: str) -> RunInfo:
        return self.client.get_run(run_id)  # type: ignore[no-any-return]

    def workflows(self) -> list[dict[str, Any]]:
        """``[{"id", "description", "schema"}]`` of the workflows the engine knows."""
        found = self.client.workflows()
        items = found.values() if isinstance(found, dict) else found
        return [_as_dict(w) for w in items]

    def engine_info(self) -> dict[str, Any]:
        return _as_dict(self.client.engine_info())

    # -- verbs ------------------------------------------------------------------------------

    def signal(self, run_id: str, event: str, payload: Any = None) -> None:
        self.client.signal(run_id, event, payload)

    def cancel(self, run_id: str, *, reason: str | None = None) -> RunResult:
        return self.client.cancel(run_id, reason=reason)  # type: ignore[no-any-return]

    def retry(self, run_id: str) -> RunResult:
        return self.client.retry(run_id)  # type: ignore[no-any-return]

    def trigger(self, workflow: str, payload: Any = None) -> RunResult:
        return self.client.trigger(workflow, payload)  # type: ignore[no-any-return]


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    to_dict: Callable[[], dict[str, Any]] | None = getattr(value, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    return dict(vars(value))


def split_search(text: str | None) -> tuple[str | None, str | None]:
    """The search box's text as ``(tag, search)``: a word ``tag:NAME`` filters on a tag
    (the last one, if several), the other words are the substring search.

    ``"tag:billing o_42"`` -> ``("billing", "o_42")``; ``"o_42"`` -> ``(None, "o_42")``.
    """
    tag = None
    rest = []
    for word in (text or "").split():
        if word.startswith("tag:") and len(word) > 4:
            tag = word[4:]
        else:
            rest.append(word)
    return tag, " ".join(rest) or None
