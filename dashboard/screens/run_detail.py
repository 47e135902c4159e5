"""RunDetailScreen: everything about one run, kept current while it moves."""

from __future__ import annotations

from typing import ClassVar

from rich.json import JSON
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from tarry import RunInfo, RunResult

from ..format import age, clock_time, compact_json, countdown, pretty_json, waiting_for
from ..loader import Reloader
from ..widgets import JournalTimeline, WorkerBanner
from ..widgets.run_table import status_style

__all__ = ["RunDetailScreen"]


class RunDetailScreen(Screen[None]):
    """A run's status, payload and output, its pending wait counting down, its journal as a
    timeline, its signals and, for a failed run, the error with its traceback.

    | Key(s) | Description |
    | :- | :- |
    | escape, backspace | Back to the runs. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("backspace", "back", "Back", show=False),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.info: RunInfo | None = None
        self.stale = False
        self.loads = 0
        self._reloader = Reloader(self, key=lambda: self.run_id, fetch=self._fetch, apply=self._show)

    def compose(self) -> ComposeResult:
        yield WorkerBanner()
        with VerticalScroll(id="detail"):
            yield Static(Text(f"run {self.run_id}"), id="summary")
            yield Static("", id="pending")
            yield Static("", id="error")
            with Horizontal(id="data"):
                with Vertical(classes="panel"):
                    yield Label("payload", classes="panel-title")
                    yield Static("", id="payload")
                with Vertical(classes="panel"):
                    yield Label("output", classes="panel-title")
                    yield Static("", id="output")
            yield Label("journal", classes="panel-title")
            yield JournalTimeline(id="timeline")
            yield Label("signals", classes="panel-title")
            yield DataTable(id="signals", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        signals = self.query_one("#signals", DataTable)
        for key in ("id", "event", "payload", "sent", "sent by", "state"):
            signals.add_column(key, key=key)
        self.query_one(JournalTimeline).focus()
        self.set_interval(1.0, self._tick)
        self.reload()

    def on_screen_resume(self) -> None:
        if self.stale:
            self.reload()

    def selected_run(self) -> RunResult | None:
        return None if self.info is None else self.info.result

    def action_back(self) -> None:
        self.dismiss()

    # -- loading --------------------------------------------------------------------------------

    def reload(self) -> None:
        self.stale = False
        self._reloader.request()

    def _fetch(self, run_id: str) -> RunInfo:
        return self.app.source.run(run_id)  # type: ignore[attr-defined,no-any-return]

    def _show(self, info: RunInfo) -> None:
        now = self.app.now()  # type: ignore[attr-defined]
        changed = self.info is None or self.info.to_dict() != info.to_dict()
        self.info = info
        self.loads += 1
        self._tick()
        if not changed:
            return
        self.query_one("#payload", Static).update(JSON(pretty_json(info.payload)))
        output = "" if info.output is None and info.status != "completed" else pretty_json(info.output)
        self.query_one("#output", Static).update(
            JSON(output)
            if output
            else Text("(none yet)" if info.status in ("running", "suspended") else "(none)", style="dim")
        )
        error = self.query_one("#error", Static)
        error.display = info.error is not None
        if info.error is not None:
            text = Text()
            text.append(f"{info.error.type}: {info.error.message}\n", style="bold")
            if info.error.step_id:
                text.append(f"in step {info.error.step_id}\n")
            text.append(info.error.traceback.rstrip())
            error.update(text)
        self.query_one(JournalTimeline).show(info.history, now)
        signals = self.query_one("#signals", DataTable)
        signals.clear()
        for sig in info.signals:
            state = f"consumed by {sig.consumed_by}" if sig.consumed_at else "buffered"
            sent = clock_time(sig.sent_at, now)
            signals.add_row(str(sig.id), sig.event, compact_json(sig.payload), sent, sig.sent_by or "-", state)

    def _tick(self) -> None:
        """Redraw what depends on "now": the summary's ages and the wait's countdown."""
        info = self.info
        if info is None:
            return
        now = self.app.now()  # type: ignore[attr-defined]
        summary = Text()
        summary.append(f"{info.run_id}", style="bold")
        summary.append(f"  {info.workflow_id}  ")
        summary.append(f" {info.status} ", style=f"reverse {status_style(self.app, info.status)}")
        summary.append(f"  attempt {info.attempt}  created {age(info.created_at, now)} ago")
        summary.append(f"  updated {age(info.updated_at, now)} ago")
        if info.cancel_reason:
            summary.append(f"  cancel: {info.cancel_reason}")
        if info.parent_run_id:
            summary.append(f"\nchild of {info.parent_run_id}")
        if info.children:
            summary.append(f"\nchildren: {', '.join(info.children)}")
        if info.forked_from:
            summary.append(f"\nforked from {info.forked_from}")
        if info.audit:  # who triggered, cancelled and retried it
            done = {"trigger": "triggered", "cancel": "cancelled", "retry": "retried"}
            trail = (f"{done.get(a.action, a.action)} by {a.by} {clock_time(a.at, now)}" for a in info.audit)
            summary.append("\n" + " · ".join(trail))
        self.query_one("#summary", Static).update(summary)
        pending = self.query_one("#pending", Static)
        pending.display = bool(info.pending) and info.status in ("suspended", "running")
        if pending.display and info.pending:
            end = info.pending.get("deadline") if info.pending.get("kind") == "event" else info.pending.get("wake_at")
            line = f"waiting for {waiting_for(info.pending, now)} (step {info.pending.get('step')})"
            if info.pending.get("kind") == "event":
                line += f": times out {countdown(end, now)}" if end else ": no deadline"
            elif end:
                line += f": wakes {countdown(end, now)}"
            pending.update(Text(line))
