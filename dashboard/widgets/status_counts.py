"""StatusCounts: runs per status, each with the key that filters on it."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ..source import FILTERS
from .run_table import status_style, theme_color

__all__ = ["StatusCounts"]


class StatusCounts(Static):
    """``1 all 1,204  2 running 3  3 suspended 40 ...``: runs per filter, each after the
    key that shows it; the active filter is highlighted. Where that does not fit the width,
    the titles are shortened (``2 run 3  3 susp 40``), and then the line breaks between
    filters, never inside one: every filter stays on screen."""

    counts: reactive[dict[str, int]] = reactive(dict, always_update=True)
    active: reactive[str] = reactive("all")
    approvals: reactive[int | None] = reactive(None)

    def render(self) -> Text:
        width = self.size.width or self.app.size.width
        full = self._entries(short=False)
        entries = full if sum(e.cell_len + 1 for e in full) <= width else self._entries(short=True)
        text = Text()
        used = 0
        for entry in entries:
            if used and used + 1 + entry.cell_len > width:
                text.append("\n")
                used = 0
            elif used:
                text.append(" ")
                used += 1
            text.append_text(entry)
            used += entry.cell_len
        return text

    def _entries(self, *, short: bool) -> list[Text]:
        accent = theme_color(self.app, "accent")
        entries = []
        for flt in FILTERS:
            if flt.approval:
                number = self.approvals
            elif flt.status is None:
                number = sum(self.counts.values())
            else:
                number = self.counts.get(flt.status, 0)
            selected = flt.name == self.active
            entry = Text()
            entry.append(f" {flt.key} ", style=f"bold {accent}")
            style = "bold reverse" if selected else status_style(self.app, flt.status or "")
            entry.append(flt.short or flt.title if short else flt.title, style=style)
            if number is not None:
                entry.append(f" {number:,}", style="bold")
            entries.append(entry)
        return entries
