"""JournalTimeline: a run's journal, one row per step, sleep or wait."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from tarry import HistoryEntry

from ..format import clock_time, compact_json, countdown, duration
from .run_table import theme_color

__all__ = ["JournalTimeline"]

ICONS = {"completed": "●", "failed": "✖", "waiting": "◌", "retrying": "↻"}


class JournalTimeline(DataTable[Text | str]):
    """The journal as a timeline: start, duration, attempts, result or error of each entry.

    A sleep or wait still in progress shows the time left before it ends.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._entries: list[HistoryEntry] = []

    def on_mount(self) -> None:
        for key, label in (
            ("seq", "#"),
            ("step", "step"),
            ("kind", "kind"),
            ("status", "status"),
            ("start", "started"),
            ("took", "took"),
            ("attempts", "tries"),
            ("result", "result / error"),
        ):
            self.add_column(label, key=key)

    def show(self, entries: Sequence[HistoryEntry], now: datetime) -> None:
        """Show ``entries`` (replacing what was shown), keeping the cursor row."""
        row = self.cursor_row
        self._entries = list(entries)
        self.clear()
        for entry in entries:
            color = {"completed": "success", "failed": "error", "waiting": "warning", "retrying": "warning"}.get(
                entry.status, ""
            )
            status = Text(f"{ICONS.get(entry.status, '·')} {entry.status}", style=theme_color(self.app, color))
            if entry.finished_at is not None:
                took = duration((entry.finished_at - entry.started_at).total_seconds())
            else:
                end = entry.detail.get("wake_at") or entry.detail.get("deadline") or entry.detail.get("next_at")
                took = countdown(end, now) if isinstance(end, datetime) else "…"
            self.add_row(
                str(entry.seq),
                Text(entry.step_id),
                entry.kind,
                status,
                clock_time(entry.started_at, now),
                took,
                str(entry.attempts),
                _result(entry),
                key=str(entry.seq),
            )
        if entries:
            self.move_cursor(row=min(row, len(entries) - 1), scroll=False)


def _result(entry: HistoryEntry) -> Text:
    tries = "".join(f"#{f['attempt']} {f['type']}: {f['message']}; " for f in entry.failures)
    if entry.status == "retrying":
        return Text(f"{tries}retrying")
    if entry.kind == "child":
        child = entry.child_run_id or "?"
        if entry.status == "waiting":
            return Text(f"child {child}: running")
        if entry.error is not None:
            return Text(f"child {child}: {entry.error.type}: {entry.error.message}", style="bold")
        return Text(f"child {child}" + (f": {compact_json(entry.output)}" if entry.detail.get("wait") else " started"))
    if entry.kind == "patch":
        return Text(f"new code of {entry.step_id.removeprefix('patch:')}")
    if entry.error is not None:
        return Text(
            f"{tries if entry.status == 'completed' else ''}{entry.error.type}: {entry.error.message}", style="bold"
        )
    if entry.kind == "step" and tries:
        return Text(f"{tries}{compact_json(entry.output)}")
    if entry.kind == "event":
        event = entry.detail.get("received") or " | ".join(
            entry.detail.get("events") or [entry.detail.get("event", "")]
        )
        if entry.status == "waiting":
            return Text(f"waits for {event}")
        if entry.detail.get("timed_out"):
            return Text(f"{event}: timed out")
        sender = f" (from {entry.detail['sent_by']})" if entry.detail.get("sent_by") else ""
        return Text(f"{event}: {compact_json(entry.output)}{sender}")
    if entry.kind == "sleep":
        wake_at = entry.detail.get("wake_at")
        return Text(f"until {wake_at.isoformat(timespec='seconds')}" if isinstance(wake_at, datetime) else "")
    return Text(compact_json(entry.output))
