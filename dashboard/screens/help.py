"""HelpScreen: every key binding of the screen it was opened from."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

__all__ = ["HelpScreen", "help_rows"]


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
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", justify="right", no_wrap=True)
        table.add_column()
        for keys, text in help_rows(self.app, self.shown_bindings):
            table.add_row(keys, text)
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(id="help-keys"):
                yield Static(table, id="help-table")
            yield Label("ctrl+p: every action and filter by name · escape closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss()


#: Textual's own bindings of every app and screen: listed last.
_TEXTUAL_ACTIONS = {"app.focus_next", "app.focus_previous", "screen.copy_text", "command_palette", "help_quit"}


def help_rows(app: App[object], bindings: dict[str, ActiveBinding]) -> list[tuple[str, str]]:
    """``(keys, what they do)`` of every described binding: ``enter`` first, then the
    screen's, the app's, the focused widget's and Textual's own (focus, copy, palette); the
    keys of one action share a row (``down, j``) and the filters one row (``1-7``)."""

    def rank(active: ActiveBinding) -> int:
        binding = active.binding
        if binding.key == "enter":
            return 0
        if binding.action in _TEXTUAL_ACTIONS:
            return 4
        return 2 if active.node is app else 1 if isinstance(active.node, Screen) else 3

    rows: dict[str, tuple[list[str], str]] = {}
    filters: list[tuple[str, str]] = []
    for active in sorted(bindings.values(), key=rank):
        binding = active.binding
        if not binding.description:
            continue
        key = "enter" if binding.key == "enter" else app.get_key_display(binding)
        if binding.action.startswith("filter("):
            filters.append((key, binding.description))
            continue
        action = f"{id(active.node)}:{binding.action}" if rank(active) == 3 else binding.action
        if action in rows:
            if key not in rows[action][0]:
                rows[action][0].append(key)
            continue
        text = binding.description + (f" — {binding.tooltip}" if binding.tooltip else "")
        rows[action] = ([key], text)
    found = [(", ".join(keys), text) for keys, text in rows.values()]
    if filters:
        keys = [k for k, _ in filters]
        label = f"{keys[0]}-{keys[-1]}" if len(keys) > 1 else keys[0]
        found.insert(0, (label, "Filter: " + ", ".join(title for _, title in filters)))
    return found
