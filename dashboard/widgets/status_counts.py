"""StatusCounts: runs per status, each with the key that filters on it."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ..source import FILTERS
from .run_table import status_style, theme_color

__all__ = ["StatusCounts"]


class StatusCounts(Static):
    """One line: ``1 all 1,204  2 running 3  3 suspended 40 ...``; the active filter is
    highlighted. Also a legend of the filter keys."""

    counts: reactive[dict[str, int]] = reactive(dict, always_update=True)
    active: reactive[str] = reactive("all")
    approvals: reactive[int | None] = reactive(None)

    def render(self) -> Text:
        accent = theme_color(self.app, "accent")
        line = Text()
        for flt in FILTERS:
            if flt.approval:
                number = self.approvals
            elif flt.status is None:
                number = sum(self.counts.values())
            else:
                number = self.counts.get(flt.status, 0)
            selected = flt.name == self.active
            line.append(f" {flt.key} ", style=f"bold {accent}")
            style = "bold reverse" if selected else status_style(self.app, flt.status or "")
            line.append(flt.title, style=style)
            if number is not None:
                line.append(f" {number:,}", style="bold")
            line.append("  ")
        return line
