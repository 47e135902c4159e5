"""EngineScreen: which worker holds the database, its heartbeat, runs per status, the size."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..format import duration
from ..loader import Reloader

__all__ = ["EngineScreen"]


class EngineScreen(ModalScreen[None]):
    """The engine's state as ``tarry.Client.engine_info()`` reports it, reloaded on change.

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
        self._reloader = Reloader(
            self,
            key=lambda: None,
            fetch=lambda _: self.app.source.engine_info(),  # type: ignore[attr-defined]
            apply=self._show,
        )

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="engine"):
            yield Label("Engine", classes="dialog-title")
            yield Static("loading…", id="engine-info")

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(1.0, self.reload)  # the heartbeat's age moves on

    def action_close(self) -> None:
        self.dismiss()

    def reload(self) -> None:
        self._reloader.request()

    def _show(self, info: dict[str, Any]) -> None:
        self.info = info
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", justify="right")
        table.add_column()
        for label, value in engine_rows(info):
            table.add_row(label, value)
        self.query_one("#engine-info", Static).update(table)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


def engine_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """Label and text of each line of the engine screen, from ``Client.engine_info()``."""
    rows: list[tuple[str, str]] = []
    worker = info.get("worker")
    if worker:
        state = "serving" if info.get("worker_alive") else "lease expired: no worker is serving"
        rows.append(("worker", f"{worker} ({state})"))
        where = [f"pid {info['worker_pid']}" if info.get("worker_pid") else "", info.get("worker_host") or ""]
        if any(where):
            rows.append(("", " on ".join(w for w in where if w)))
        if info.get("worker_started_at"):
            rows.append(("since", str(info["worker_started_at"]).replace("T", " ").split(".")[0]))
    else:
        rows.append(("worker", "none has served this database yet"))
    if info.get("heartbeat_age") is not None:
        rows.append(("heartbeat", f"{duration(float(info['heartbeat_age']))} ago"))
    runs = info.get("runs") or {}
    rows.append(("runs", "  ".join(f"{k} {v:,}" for k, v in runs.items()) + f"  (total {sum(runs.values()):,})"))
    if "pending_changes" in info:
        rows.append(("pending", f"{info['pending_changes']:,} client change(s) not yet picked up by a worker"))
    if info.get("path"):
        rows.append(("database", str(info["path"])))
    if info.get("size_bytes") is not None:
        rows.append(("size", _size(int(info["size_bytes"])) + " (file + write-ahead log)"))
    if info.get("schema_version") is not None:
        rows.append(("schema", f"version {info['schema_version']}"))
    return rows
