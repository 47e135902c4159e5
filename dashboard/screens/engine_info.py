"""EngineScreen: which worker holds the database, its heartbeat, runs per status, the size."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from engine import WorkflowError

from ..format import duration, pretty_json

__all__ = ["EngineScreen"]


class EngineScreen(ModalScreen[None]):
    """The engine's state as ``engine.Client.engine_info()`` reports it, reloaded on change.

    | Key(s) | Description |
    | :- | :- |
    | escape, e, q | Close. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,e,q", "close", "Close"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="engine"):
            yield Label("Engine", classes="dialog-title")
            yield Static("loading…", id="engine-info")

    def on_mount(self) -> None:
        self.reload()

    def action_close(self) -> None:
        self.dismiss()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="engine-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            info = self.app.source.engine_info()  # type: ignore[attr-defined]
        except WorkflowError as exc:
            self.app.call_from_thread(self.notify, exc.message, title=exc.code, severity="error")
            return
        self.app.call_from_thread(self._show, info)

    def _show(self, info: dict[str, Any]) -> None:
        self.info = info
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key, value in info.items():
            table.add_row(key.replace("_", " "), _value(key, value))
        self.query_one("#engine-info", Static).update(table)


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and ("age" in key or key.endswith("_s")):
        return duration(value)
    if isinstance(value, int) and ("size" in key or "bytes" in key):
        return f"{value / 1024 / 1024:.1f} MiB" if value >= 1024 * 1024 else f"{value / 1024:.1f} KiB"
    if isinstance(value, dict):
        if all(isinstance(v, int) for v in value.values()):
            return "  ".join(f"{k} {v:,}" for k, v in value.items()) or "-"
        return pretty_json(value)
    return str(value)
