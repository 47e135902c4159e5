"""TriggerModal: start a run of a registered workflow with a JSON payload."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, Static, TextArea

from tarry import WorkflowError

from .json_editor import JsonEditor

__all__ = ["TriggerModal"]


class TriggerModal(ModalScreen[Any]):
    """Triggers a run with ``trigger(workflow_id, payload)`` (blocking: it runs in a thread)
    and dismisses with what that returned, or with ``None`` when cancelled.

    The cursor starts in the payload editor, inside its ``{}``. When ``trigger`` raises a
    ``WorkflowError`` (the payload fails the schema, the workflow is unknown ...), the
    error shows under the editor and the dialog stays open with the text as typed.

    ``workflows`` are dicts with ``id`` and optionally ``description`` and a payload
    ``schema``, as ``tarry.Client.workflows()`` describes them.

    | Key(s) | Description |
    | :- | :- |
    | ctrl+s | Trigger. |
    | escape | Cancel. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Trigger", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, workflows: list[dict[str, Any]], trigger: Callable[[str, Any], Any]) -> None:
        super().__init__()
        self.workflows = {str(w["id"]): w for w in workflows}
        self.trigger = trigger
        #: A trigger is in flight (a second ctrl+s waits for it).
        self.busy = False

    def compose(self) -> ComposeResult:
        first = next(iter(self.workflows), None)
        with Vertical(id="dialog", classes="trigger"):
            yield Label("Trigger a run", classes="dialog-title")
            yield Select(
                [(wid, wid) for wid in self.workflows],
                value=first if first is not None else Select.BLANK,
                prompt="workflow",
                allow_blank=first is None,
                id="workflow",
            )
            yield Static("", id="workflow-help")
            yield Label("payload (JSON)")
            yield JsonEditor("{}", id="payload")
            yield Label("", id="trigger-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Trigger ^s", id="send", variant="primary")
                yield Button("Cancel esc", id="cancel")

    def on_mount(self) -> None:
        self._describe()
        self.query_one("#trigger-error", Label).display = False
        editor = self.query_one("#json", TextArea)
        editor.focus()
        editor.move_cursor((0, 1))  # inside the {}

    @on(Select.Changed, "#workflow")
    def _describe(self) -> None:
        chosen = self.workflows.get(str(self.query_one("#workflow", Select).value))
        lines = []
        if chosen is not None:
            if chosen.get("description"):
                lines.append(str(chosen["description"]).strip().splitlines()[0])
            schedule = chosen.get("schedule")
            if schedule:
                lines.append(f"runs by itself: {schedule['cron']} ({schedule['tz']})")
            schema = chosen.get("schema") or chosen.get("payload_schema")
            if schema:
                lines.append("schema: " + json.dumps(schema, ensure_ascii=False, default=str)[:300])
        elif not self.workflows:
            lines.append("No workflows are registered (is a worker running?)")
        self.query_one("#workflow-help", Static).update("\n".join(lines))
        self._validate()

    @on(JsonEditor.Validated)
    def _validate(self) -> None:
        if self.is_mounted:
            self.query_one("#trigger-error", Label).display = False
        ok = self.query_one(JsonEditor).valid and self.query_one("#workflow", Select).value != Select.BLANK
        self.query_one("#send", Button).disabled = not ok

    @on(Button.Pressed, "#send")
    def action_send(self) -> None:
        editor = self.query_one(JsonEditor)
        workflow = self.query_one("#workflow", Select).value
        if workflow == Select.BLANK:
            self.notify("Pick a workflow first.", severity="warning")
            return
        if not editor.valid:
            self._error(editor.error)
            return
        if not self.busy:
            self.busy = True
            self.run_worker(partial(self._trigger, str(workflow), editor.value), thread=True, exit_on_error=False)

    def _trigger(self, workflow: str, payload: Any) -> None:
        try:
            result = self.trigger(workflow, payload)
        except WorkflowError as exc:
            self.app.call_from_thread(self._failed, f"{exc.code}: {exc.message}")
        except Exception as exc:  # not tarry's: still shown, not a crash
            self.app.call_from_thread(self._failed, f"{type(exc).__name__}: {exc}")
        else:
            self.app.call_from_thread(self.dismiss, result)

    def _failed(self, message: str) -> None:
        self.busy = False
        self._error(message)

    def _error(self, message: str) -> None:
        """Show ``message`` under the editor; the dialog and its text stay."""
        error = self.query_one("#trigger-error", Label)
        error.update(message)
        error.display = True

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
