"""HelpScreen: every key binding of the screen it was opened from."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

__all__ = ["HelpScreen"]


class HelpScreen(ModalScreen[None]):
    """Lists ``bindings`` (a screen's ``active_bindings``), hidden ones included.

    | Key(s) | Description |
    | :- | :- |
    | escape, ?, q | Close. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, bindings: dict[str, ActiveBinding]) -> None:
        super().__init__()
        self.shown_bindings = bindings

    def compose(self) -> ComposeResult:
        # The app's actions first, then the screen's keys, then the focused widget's.
        def rank(active: ActiveBinding) -> int:
            return 0 if active.node is self.app else 1 if isinstance(active.node, Screen) else 2

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", justify="right")
        table.add_column()
        seen: set[str] = set()
        for active in sorted(self.shown_bindings.values(), key=rank):
            binding = active.binding
            key = self.app.get_key_display(binding)
            if key in seen or not binding.description:
                continue
            seen.add(key)
            help_text = binding.description + (f" — {binding.tooltip}" if binding.tooltip else "")
            table.add_row(key, help_text)
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(id="help-keys"):
                yield Static(table)
            yield Label("ctrl+p opens the command palette: every action and filter by name.", classes="hint")

    def action_close(self) -> None:
        self.dismiss()
