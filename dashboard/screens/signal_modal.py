"""SignalModal: send a signal (an event name and a JSON payload) to a run."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

from .json_editor import JsonEditor

__all__ = ["SignalModal"]


class SignalModal(ModalScreen[tuple[str, Any] | None]):
    """Dismisses with ``(event, payload)`` to send, or ``None`` when cancelled.

    The event name is pre-filled from the run's pending wait. The payload is checked as you
    type; Send is disabled while it is not valid JSON, so invalid JSON is never sent.

    | Key(s) | Description |
    | :- | :- |
    | ctrl+s | Send. |
    | enter | Send (in the one-line event field). |
    | escape | Cancel. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, run_id: str, event: str = "", payload: str = "{}") -> None:
        super().__init__()
        self.run_id = run_id
        self.event = event
        self.payload = payload

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="signal"):
            yield Label(f"Signal run {self.run_id}", classes="dialog-title")
            yield Label("event")
            yield Input(self.event, placeholder="event name, e.g. review-decision", id="event")
            yield Label("payload (JSON)")
            yield JsonEditor(self.payload, id="payload")
            with Horizontal(classes="buttons"):
                yield Button("Send ^s", id="send", variant="primary")
                yield Button("Cancel esc", id="cancel")

    def on_mount(self) -> None:
        if self.event:
            payload = self.query_one("#json", TextArea)
            payload.focus()
            payload.select_all()  # typing replaces the template
        else:
            self.query_one("#event", Input).focus()

    @on(JsonEditor.Validated)
    @on(Input.Changed, "#event")
    def _validate(self) -> None:
        self.query_one("#send", Button).disabled = not self._ready()

    def _ready(self) -> bool:
        return bool(self.query_one("#event", Input).value.strip()) and self.query_one(JsonEditor).valid

    @on(Input.Submitted, "#event")
    @on(Button.Pressed, "#send")
    def action_send(self) -> None:
        editor = self.query_one(JsonEditor)
        event = self.query_one("#event", Input).value.strip()
        if not event:
            self.notify("An event name is needed.", severity="warning")
            return
        if not editor.valid:
            self.notify(editor.error, title="Not sent", severity="error")
            return
        self.dismiss((event, editor.value))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
