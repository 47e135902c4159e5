"""RunsScreen: the runs table with status counts, filters, search and paging."""

from __future__ import annotations

import time
from functools import partial
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Label, Static

from tarry import RunResult

from ..actions import filter_bindings
from ..loader import Reloader
from ..source import FILTERS_BY_NAME, PAGE_SIZE, Filter, Page
from ..widgets import RunTable, StatusCounts, WorkerBanner
from .run_detail import RunDetailScreen

__all__ = ["RunsScreen"]

#: Seconds of quiet in the search field before the search runs.
SEARCH_DEBOUNCE = 0.2


class RunsScreen(Screen[None]):
    """The main screen: runs newest first (longest wait first under "needs approval").

    The table reloads when the database changes (the app watches ``data_version``) and when
    the filter, the search or the page changes; the reload runs in a worker thread (one at
    a time, see :class:`tarry.dashboard.loader.Reloader`) and only the rows that changed are
    touched. Ages and countdowns are redrawn every second from
    what was loaded.

    | Key(s) | Description |
    | :- | :- |
    | 1-7 | Filter: all, running, suspended, needs approval, failed, completed, cancelled. |
    | / | Search run id, workflow or payload text (escape clears). |
    | ] / [ | Next / previous page. |
    | enter | Open the run's detail. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *filter_bindings(),
        Binding("slash", "search", "Search"),
        Binding("escape", "clear_search", "Clear", show=False),
        Binding("right_square_bracket", "page(1)", "Next page", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False),
        Binding("enter", "open", "Open", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run_filter = FILTERS_BY_NAME["all"]
        self.search = ""
        self.page_offset = 0
        self.total: int | None = None
        self.stale = False
        #: How long the last reload took, seconds (database read + table update).
        self.last_load: float | None = None
        #: Completed reloads since the screen opened (tests wait on it).
        self.loads = 0
        self._search_timer: Timer | None = None
        self._reloader = Reloader(self, key=self._key, fetch=self._fetch, apply=self._show)

    def compose(self) -> ComposeResult:
        yield Label(f"[b]tarry[/] {self.app.sub_title}", id="title")
        yield WorkerBanner()
        yield StatusCounts(id="counts")
        yield Input(placeholder="search run id, workflow or payload text; enter to keep, escape to clear", id="search")
        yield RunTable(id="runs")
        yield Static("", id="pager")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.query_one(RunTable).focus()
        self.set_interval(1.0, self._tick)
        self.reload()

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.reload()

    # -- what the verbs act on ------------------------------------------------------------------

    def selected_run(self) -> RunResult | None:
        return self.query_one(RunTable).current_run

    # -- loading ------------------------------------------------------------------------------

    def reload(self) -> None:
        self.stale = False
        self._reloader.request()

    def _key(self) -> tuple[Filter, str, int]:
        return (self.run_filter, self.search, self.page_offset)

    def _fetch(self, key: tuple[Filter, str, int]) -> tuple[Page, float]:
        started = time.perf_counter()
        flt, search, offset = key
        return self.app.source.page(flt, offset=offset, search=search), started  # type: ignore[attr-defined]

    def _show(self, loaded: tuple[Page, float]) -> None:
        page, started = loaded
        now = self.app.now()  # type: ignore[attr-defined]
        self.total = page.total
        table = self.query_one(RunTable)
        table.sync(page.runs, now, page.payloads)
        counts = self.query_one(StatusCounts)
        counts.counts = page.counts
        counts.active = self.run_filter.name
        if page.approvals is not None:
            counts.approvals = page.approvals
        self.last_load = time.perf_counter() - started
        self.loads += 1
        self._update_pager()

    def _update_pager(self) -> None:
        shown = len(self.query_one(RunTable).run_ids)
        first = self.page_offset + 1 if shown else 0
        what = f"{self.run_filter.title}" + (f' matching "{self.search}"' if self.search else "")
        of = f" of {self.total:,}" if self.total is not None else ""
        pages = ""
        if self.total is not None and self.total > PAGE_SIZE:
            pages = f" · page {self.page_offset // PAGE_SIZE + 1}/{(self.total - 1) // PAGE_SIZE + 1} ([ ] to turn)"
        self.query_one("#pager", Static).update(f"{what}: {first:,}-{self.page_offset + shown:,}{of}{pages}")

    def _tick(self) -> None:
        self.query_one(RunTable).tick(self.app.now())  # type: ignore[attr-defined]

    # -- keys -----------------------------------------------------------------------------------

    def action_filter(self, name: str) -> None:
        self.run_filter = FILTERS_BY_NAME[name]
        self.page_offset = 0
        self.query_one(StatusCounts).active = name
        self.reload()

    def action_page(self, step: int) -> None:
        offset = max(0, self.page_offset + step * PAGE_SIZE)
        if self.total is not None and offset >= self.total:
            return
        if step > 0 and self.total is None and len(self.query_one(RunTable).run_ids) < PAGE_SIZE:
            return
        if offset != self.page_offset:
            self.page_offset = offset
            self.reload()

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        search.value = ""
        search.display = False
        self.query_one(RunTable).focus()
        if self.search:
            self.search = ""
            self.page_offset = 0
            self.reload()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        """Search as you type, once typing pauses (a search reads every run's payload)."""
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE, partial(self._search_now, event.value.strip()))

    def _search_now(self, text: str) -> None:
        self._search_timer = None
        if text != self.search:
            self.search = text
            self.page_offset = 0
            self.reload()

    @on(Input.Submitted, "#search")
    def _search_done(self, event: Input.Submitted) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_now(event.value.strip())
        self.query_one(RunTable).focus()
        if not self.search:
            event.input.display = False

    @on(DataTable.RowSelected, "#runs")
    def action_open(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.app.push_screen(RunDetailScreen(run.run_id))
