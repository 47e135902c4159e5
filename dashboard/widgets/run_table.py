"""RunTable: the runs as keyed rows, updated in place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import App
from textual.binding import Binding, BindingType
from textual.color import Color, ColorParseError
from textual.widgets import DataTable

from engine import RunResult

from ..format import age, countdown, waiting_for

__all__ = ["COLUMNS", "RunTable"]

#: (key, label) of each column, left to right.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "run id"),
    ("workflow", "workflow"),
    ("status", "status"),
    ("step", "step"),
    ("waiting", "waiting for"),
    ("age", "age"),
    ("updated", "updated"),
)
#: The columns whose text depends on "now" (redrawn every second without a database read).
TIMED = ("waiting", "age", "updated")

#: The theme variable each status is drawn in.
STATUS_COLORS = {
    "running": "accent",
    "suspended": "warning",
    "completed": "success",
    "failed": "error",
    "cancelled": "foreground-muted",
}


def theme_color(app: App[object], name: str) -> str:
    """The Rich color of theme variable ``name`` (alpha dropped), or ``""`` if unknown."""
    value = app.theme_variables.get(name)
    if not value:
        return ""
    try:
        return Color.parse(value).hex6
    except ColorParseError:
        return ""


def status_style(app: App[object], status: str) -> str:
    return theme_color(app, STATUS_COLORS.get(status, ""))


def current_step(run: RunResult) -> str:
    """The step a run is at: the one it waits in, else its latest journal entry, else the
    step whose failure ended it."""
    return str((run.pending or {}).get("step") or run.last_step or (run.error.step_id if run.error else "") or "")


class RunTable(DataTable[Text | str]):
    """The runs table: one row per run, keyed by run id.

    :meth:`sync` changes only the rows whose cells changed, adds and removes rows by key,
    and keeps the cursor on the run it was on (and the scroll where it was).

    | Key(s) | Description |
    | :- | :- |
    | up/down/pageup/pagedown/home/end | Move the cursor. |
    | enter | Open the highlighted run (posts `DataTable.RowSelected`). |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._runs: dict[str, RunResult] = {}
        self._cells: dict[str, tuple[Text | str, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    # -- what the screens use ---------------------------------------------------------------

    @property
    def run_ids(self) -> list[str]:
        """The run ids in display order."""
        return list(self._order)

    @property
    def current_run(self) -> RunResult | None:
        """The run under the cursor."""
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self._runs.get(key or "")

    def run(self, run_id: str) -> RunResult | None:
        return self._runs.get(run_id)

    def sync(self, runs: Sequence[RunResult], now: datetime) -> int:
        """Show ``runs`` in this order; returns how many rows were added, changed or removed.

        Rows are keyed by run id: a run whose cells are unchanged is not touched, a changed
        one has only its changed cells updated. When most rows are new (another filter or
        page), the table is rebuilt in one go instead, which is faster than row by row.
        """
        keep = self.current_run.run_id if self.current_run else None
        keep_row = self.cursor_row
        wanted = {r.run_id: r for r in runs}
        order = list(wanted)
        rendered = [(run, self._render(run, now)) for run in runs]
        if len(wanted.keys() & self._runs.keys()) * 2 < len(wanted):
            touched = self._rebuild(rendered)
        else:
            touched = self._patch(rendered, wanted)
            if order != self._current_order():
                position = {run_id: i for i, run_id in enumerate(order)}
                self.sort("run", key=lambda cell: position[str(cell)])
        self._order = order
        if keep is not None and keep in wanted:
            self.move_cursor(row=order.index(keep), scroll=False)
        elif order:
            self.move_cursor(row=min(keep_row, len(order) - 1), scroll=False)
        return touched

    def _rebuild(self, rendered: list[tuple[RunResult, tuple[Text | str, ...]]]) -> int:
        touched = len(self._runs) + len(rendered)
        self.clear()
        self._runs = {run.run_id: run for run, _ in rendered}
        self._cells = {run.run_id: cells for run, cells in rendered}
        for run, cells in rendered:
            self.add_row(*cells, key=run.run_id)
        return touched

    def _patch(self, rendered: list[tuple[RunResult, tuple[Text | str, ...]]], wanted: dict[str, RunResult]) -> int:
        touched = 0
        for run_id in [k for k in self._order if k not in wanted]:
            self.remove_row(run_id)
            del self._runs[run_id], self._cells[run_id]
            touched += 1
        for run, cells in rendered:
            old = self._cells.get(run.run_id)
            if old is None:
                self.add_row(*cells, key=run.run_id)
                touched += 1
            elif old != cells:
                self._update(run.run_id, old, cells)
                touched += 1
            self._runs[run.run_id] = run
            self._cells[run.run_id] = cells
        return touched

    def tick(self, now: datetime) -> None:
        """Redraw the time-dependent cells (ages, countdowns) for a new "now"."""
        for run_id in self._order:
            cells = self._render(self._runs[run_id], now)
            old = self._cells[run_id]
            if old != cells:
                self._update(run_id, old, cells)
                self._cells[run_id] = cells

    # -- internals --------------------------------------------------------------------------

    def _current_order(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    def _update(self, run_id: str, old: tuple[Text | str, ...], new: tuple[Text | str, ...]) -> None:
        for (column, _), before, after in zip(COLUMNS, old, new, strict=True):
            if before != after:
                self.update_cell(run_id, column, after)

    def _render(self, run: RunResult, now: datetime) -> tuple[Text | str, ...]:
        status = Text(run.status, style=status_style(self.app, run.status))
        waiting = waiting_for(run.pending, now) if run.status == "suspended" else ""
        if run.pending and run.pending.get("kind") == "event" and run.pending.get("deadline") is not None:
            waiting += f" ({countdown(run.pending['deadline'], now)})"
        return (
            Text(run.run_id),
            Text.assemble(run.workflow_id, *((" #" + t, "dim") for t in run.tags)),  # its tags, dimmed
            status,
            Text(current_step(run)),
            Text(waiting),
            age(run.created_at, now),
            age(run.updated_at, now),
        )
