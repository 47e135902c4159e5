"""RunTable: the runs as keyed rows, updated in place, its columns fitted to its width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.color import Color, ColorParseError
from textual.widgets import DataTable

from tarry import RunResult

from ..format import age, countdown, fit, payload_summary, waiting_for

__all__ = ["COLUMNS", "Column", "RunTable", "fit_columns", "id_width"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the runs table and how it gives way on a narrow screen."""

    key: str
    label: str
    #: The narrowest it gets (a fixed-width column has ``low == high``).
    low: int
    #: The widest it grows to fit its cells.
    high: int
    #: The width it keeps before a droppable column is dropped for it.
    want: int = 0
    #: ``0``: always shown; otherwise hidden when the table is too narrow, highest first.
    drop: int = 0
    #: When the shown columns are too wide, the lowest ``give`` shrinks first (``0``: never).
    give: int = 0


#: The columns, left to right. The full run id, step and update time are in the detail.
COLUMNS: tuple[Column, ...] = (
    Column("run", "run id", 10, 20),
    Column("workflow", "workflow", 8, 24, want=12, give=2),
    Column("status", "status", 9, 9),
    Column("step", "step", 6, 16, want=10, drop=2, give=1),
    Column("waiting", "waiting for", 12, 44, want=24, give=3),
    Column("waited", "waited", 6, 6),
    Column("payload", "payload", 10, 48, want=16, give=1),
    Column("age", "age", 5, 5),
    Column("updated", "updated", 7, 7, drop=1),
)
COLUMNS_BY_KEY = {c.key: c for c in COLUMNS}
#: The columns whose text depends on "now" (redrawn every second without a database read).
TIMED = ("waiting", "waited", "age", "updated")
#: The blank after each column (the table has no ``cell_padding``: two blanks between
#: columns would cost 9 characters of an 80-column terminal).
PADDING = 1


def id_width(run_ids: Sequence[str], low: int = 10) -> int:
    """Characters of the run id column: the ids whole if they fit in ``low``, else the
    shortest prefix (at least ``low - 1``) that tells them apart, plus the ellipsis."""
    longest = max((len(r) for r in run_ids), default=0)
    if longest <= low:
        return max(longest, 1)
    n = low - 1
    while n < longest and len({r[:n] for r in run_ids}) < len(set(run_ids)):
        n += 1
    return longest if n >= longest - 1 else n + 1


def fit_columns(width: int, natural: Mapping[str, int]) -> list[tuple[Column, int]]:
    """The columns shown in ``width`` cells and the width of each.

    Each column wants its ``natural`` width (its widest cell, within ``low``-``high``; the
    run id column's is what tells the ids apart and never shrinks). Droppable columns go
    (highest ``drop`` first) while the others do not fit at their ``want``; then the
    flexible columns give way, lowest ``give`` first: down to their ``want``, then to
    their ``low``.
    """

    def wanted(c: Column) -> int:
        return min(max(c.low, min(c.high, natural.get(c.key, c.low))), c.want or c.high)

    shown = list(COLUMNS)
    while sum(wanted(c) + PADDING for c in shown) > width and any(c.drop for c in shown):
        shown.remove(max((c for c in shown if c.drop), key=lambda c: c.drop))
    widths = {c.key: max(c.low, min(c.high, natural.get(c.key, c.low))) for c in shown}
    excess = sum(widths.values()) + PADDING * len(shown) - width
    for floor in ("want", "low"):
        for column in sorted((c for c in shown if c.give), key=lambda c: c.give):
            if excess <= 0:
                break
            limit = column.low if floor == "low" else max(column.low, column.want)
            cut = min(excess, max(0, widths[column.key] - limit))
            widths[column.key] -= cut
            excess -= cut
    return [(c, widths[c.key]) for c in shown]


class _IdText(Text):
    """The run id cell: shows a prefix, remembers the whole id (for sorting)."""

    run_id: str


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
    and keeps the cursor on the run it was on (and the scroll where it was). Its columns fit
    its width (see :func:`fit_columns`): on 80 columns the run ids are cut to the prefix
    that tells them apart and the step and update time give way; a resize fits them again.

    | Key(s) | Description |
    | :- | :- |
    | up/down/pageup/pagedown/home/end, j/k, g/G | Move the cursor. |
    | enter | Open the highlighted run (posts `DataTable.RowSelected`). |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", tooltip="The run's detail: payload, journal, signals, error"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=0)
        self._runs: dict[str, RunResult] = {}
        self._payloads: dict[str, Any] = {}
        #: Each run's cells whole, by column key: (text, style).
        self._full: dict[str, dict[str, tuple[str, str]]] = {}
        #: Each run's cells as shown (cut to the columns' widths).
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._order: list[str] = []
        self._layout: list[tuple[Column, int]] = []
        self._now: datetime | None = None

    # -- what the screens use ---------------------------------------------------------------

    @property
    def run_ids(self) -> list[str]:
        """The run ids in display order."""
        return list(self._order)

    @property
    def shown_columns(self) -> list[str]:
        """The keys of the columns shown, left to right."""
        return [column.key for column, _ in self._layout]

    @property
    def current_run(self) -> RunResult | None:
        """The run under the cursor."""
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self._runs.get(key or "")

    def run(self, run_id: str) -> RunResult | None:
        return self._runs.get(run_id)

    def sync(self, runs: Sequence[RunResult], now: datetime, payloads: Mapping[str, Any] | None = None) -> int:
        """Show ``runs`` in this order (``payloads`` by run id for the payload column);
        returns how many rows were added, changed or removed.

        Rows are keyed by run id: a run whose cells are unchanged is not touched, a changed
        one has only its changed cells updated. When most rows are new (another filter or
        page) or the columns must be fitted again, the table is rebuilt in one go instead,
        which is faster than row by row.
        """
        keep = self.current_run.run_id if self.current_run else None
        keep_row = self.cursor_row
        self._now = now
        wanted = {r.run_id: r for r in runs}
        order = list(wanted)
        self._payloads = {run_id: (payloads or {}).get(run_id) for run_id in order}
        full = {run.run_id: self._row_text(run, now) for run in runs}
        layout = self._fit(order, full)
        if layout != self._layout or len(wanted.keys() & self._runs.keys()) * 2 < len(wanted):
            touched = self._rebuild(layout, wanted, full)
        else:
            touched = self._patch(wanted, full)
            if order != self._current_order():
                position = {run_id: i for i, run_id in enumerate(order)}
                self.sort("run", key=lambda cell: position[cell.run_id])
        self._order = order
        if keep is not None and keep in wanted:
            self.move_cursor(row=order.index(keep), scroll=False)
        elif order:
            self.move_cursor(row=min(keep_row, len(order) - 1), scroll=False)
        return touched

    def tick(self, now: datetime) -> None:
        """Redraw the time-dependent cells (ages, countdowns) for a new "now"."""
        self._now = now
        for run_id in self._order:
            self._full[run_id] = self._row_text(self._runs[run_id], now)
            cells = self._shown(run_id)
            old = self._cells[run_id]
            if old != cells:
                self._update(run_id, old, cells)
                self._cells[run_id] = cells

    def on_resize(self, _: events.Resize) -> None:
        """Fit the columns to the new width (from what was loaded: no database read)."""
        if self._now is None:
            return
        layout = self._fit(self._order, self._full)
        if layout != self._layout:
            keep = self.cursor_row
            self._rebuild(layout, dict(self._runs), dict(self._full))
            if self._order:
                self.move_cursor(row=min(keep, len(self._order) - 1), scroll=False)

    # -- internals --------------------------------------------------------------------------

    def _fit(self, order: Sequence[str], full: Mapping[str, Mapping[str, tuple[str, str]]]) -> list[tuple[Column, int]]:
        natural = {key: max((len(full[r][key][0]) for r in order), default=0) for key, _ in _TEXT_COLUMNS}
        natural["run"] = id_width(order)
        natural["payload"] = max(
            (len(payload_summary(self._payloads.get(r), COLUMNS_BY_KEY["payload"].high)) for r in order), default=0
        )
        width = self.size.width or self.app.size.width
        if len(order) + self.header_height > (self.size.height or self.app.size.height):
            width -= self.styles.scrollbar_size_vertical  # the rows overflow: a scrollbar shows
        return fit_columns(width, natural)

    def _shown(self, run_id: str) -> tuple[Text, ...]:
        """The cells of ``run_id`` cut to the current columns' widths."""
        cells: list[Text] = []
        for column, width in self._layout:
            if column.key == "run":
                cell = _IdText(fit(run_id, width))
                cell.run_id = run_id
                cells.append(cell)
            elif column.key == "payload":
                cells.append(Text(payload_summary(self._payloads.get(run_id), width)))
            else:
                text, style = self._full[run_id][column.key]
                cells.append(Text(fit(text, width), style=style))
        return tuple(cells)

    def _rebuild(
        self,
        layout: list[tuple[Column, int]],
        wanted: dict[str, RunResult],
        full: dict[str, dict[str, tuple[str, str]]],
    ) -> int:
        touched = len(self._runs) + len(wanted)
        self.clear(columns=layout != self._layout)
        if not self.columns:
            for column, width in layout:
                self.add_column(column.label, key=column.key, width=width + PADDING)
        self._layout = layout
        self._runs, self._full = dict(wanted), dict(full)
        self._cells = {run_id: self._shown(run_id) for run_id in wanted}
        self._order = list(wanted)
        for run_id, cells in self._cells.items():
            self.add_row(*cells, key=run_id)
        return touched

    def _patch(self, wanted: dict[str, RunResult], full: dict[str, dict[str, tuple[str, str]]]) -> int:
        touched = 0
        for run_id in [k for k in self._order if k not in wanted]:
            self.remove_row(run_id)
            del self._runs[run_id], self._cells[run_id], self._full[run_id]
            touched += 1
        for run_id, run in wanted.items():
            self._runs[run_id] = run
            self._full[run_id] = full[run_id]
            cells = self._shown(run_id)
            old = self._cells.get(run_id)
            if old is None:
                self.add_row(*cells, key=run_id)
                touched += 1
            elif old != cells:
                self._update(run_id, old, cells)
                touched += 1
            self._cells[run_id] = cells
        return touched

    def _current_order(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    def _update(self, run_id: str, old: tuple[Text, ...], new: tuple[Text, ...]) -> None:
        for (column, _), before, after in zip(self._layout, old, new, strict=True):
            if before != after:
                self.update_cell(run_id, column.key, after)

    def _row_text(self, run: RunResult, now: datetime) -> dict[str, tuple[str, str]]:
        """The whole text and style of each cell but the id and the payload."""
        waiting = waited = ""
        if run.status == "suspended":
            waiting = waiting_for(run.pending, now, short=True)
            waited = age(run.updated_at, now)
            if run.pending and run.pending.get("kind") == "event" and run.pending.get("deadline") is not None:
                waiting += f" ({countdown(run.pending['deadline'], now, short=True)})"
        return {
            "workflow": (run.workflow_id + "".join(f" #{t}" for t in run.tags), ""),  # its tags too
            "status": (run.status, status_style(self.app, run.status)),
            "step": (current_step(run), ""),
            "waiting": (waiting, ""),
            "waited": (waited, ""),
            "age": (age(run.created_at, now), ""),
            "updated": (age(run.updated_at, now), ""),
        }


#: The columns :meth:`RunTable._row_text` gives a text (the id and payload are drawn to fit).
_TEXT_COLUMNS = tuple((c.key, c.label) for c in COLUMNS if c.key not in ("run", "payload"))
