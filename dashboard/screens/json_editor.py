"""JsonEditor: a TextArea that checks its JSON as you type."""

from __future__ import annotations

import json
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, TextArea

__all__ = ["JsonEditor"]


class JsonEditor(Vertical):
    """A JSON text editor with a status line under it: "valid JSON" or where the error is.

    ``valid`` and ``value`` always describe the current text.
    """

    def __init__(self, text: str = "{}", *, id: str | None = None) -> None:
        super().__init__(id=id, classes="json-editor")
        self._text = text
        self.valid = True
        self.value: Any = None
        self.error = ""

    def compose(self) -> ComposeResult:
        yield TextArea(self._text, id="json", tab_behavior="focus", show_line_numbers=True)
        yield Label("", id="json-status")

    def on_mount(self) -> None:
        self._check(self._text)

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    @text.setter
    def text(self, value: str) -> None:
        self.query_one(TextArea).text = value

    @on(TextArea.Changed)
    def _changed(self, event: TextArea.Changed) -> None:
        self._check(event.text_area.text)

    def _check(self, text: str) -> None:
        status = self.query_one("#json-status", Label)
        try:
            self.value = json.loads(text)
        except json.JSONDecodeError as exc:
            self.valid, self.value = False, None
            self.error = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            status.update(self.error)
            status.set_class(True, "-invalid")
        else:
            self.valid, self.error = True, ""
            status.update("valid JSON")
            status.set_class(False, "-invalid")
        self.post_message(self.Validated(self))

    class Validated(Message):
        """Posted after each check; ``editor.valid`` says how it went."""

        def __init__(self, editor: JsonEditor) -> None:
            super().__init__()
            self.editor = editor
