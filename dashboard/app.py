"""DashboardApp: the Textual app over a ``tarry.Client``.

Thin on purpose: the screens show, :mod:`tarry.dashboard.actions` lists what can be done, and
:class:`tarry.dashboard.verbs.RunVerbs` does it through the client in worker threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.worker import get_current_worker

from .actions import ON_RUN, WRITES, app_bindings
from .commands import TarryCommands
from .screens import RunsScreen
from .source import Source
from .verbs import RunVerbs

__all__ = ["NO_WORKER", "DashboardApp", "DataChanged"]

#: The banner while no worker serves the database.
NO_WORKER = "No worker serves this database: actions are stored and wait for one."
#: Seconds between two checks that a worker still serves (its lease expires without a commit).
SERVING_EVERY = 1.0


class DataChanged(Message):
    """The database changed (another connection committed, or this app acted)."""


class DashboardApp(RunVerbs, App[None]):
    """Watch and act on the runs of one tarry database.

    Args:
        target: the database file, or a ``tarry.Client`` (left open on exit).
        read_only: hide and disable every action that changes a run.
        clock: "now" for ages and countdowns (an aware datetime); tests freeze it.
        approve_payload / reject_payload: what ``a`` / ``r`` send with the awaited event.
        poll_interval: seconds between two ``data_version`` checks (a change shows within
            this plus one page read).
    """

    CSS_PATH = "tarry.tcss"
    TITLE = "tarry"
    COMMANDS: ClassVar = App.COMMANDS | {TarryCommands}
    BINDINGS: ClassVar[list[BindingType]] = app_bindings()

    #: The banner every screen shows over its content: empty while a worker serves.
    worker_note: reactive[str] = reactive("")

    def __init__(
        self,
        target: str | os.PathLike[str] | Any,
        *,
        read_only: bool = False,
        clock: Callable[[], datetime] | None = None,
        approve_payload: Any = None,
        reject_payload: Any = None,
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__()
        self.source = target if isinstance(target, Source) else Source.open(target)
        self.read_only = read_only
        self.clock = clock or (lambda: datetime.now().astimezone())
        self.approve_payload = {"approved": True} if approve_payload is None else approve_payload
        self.reject_payload = {"approved": False} if reject_payload is None else reject_payload
        self.poll_interval = poll_interval
        self._stop_watch = threading.Event()
        path = getattr(self.source.client, "path", None)
        self.sub_title = ("read-only · " if read_only else "") + (str(path) if path else "")

    def now(self) -> datetime:
        return self.clock()

    def on_mount(self) -> None:
        self.push_screen(RunsScreen())
        self._watch()

    def on_unmount(self) -> None:
        self._stop_watch.set()
        self.source.close()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide writes in read-only mode; run actions apply only where a run is shown."""
        if action in WRITES and self.read_only:
            return False
        return action not in ON_RUN or hasattr(self.screen, "selected_run")

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def _watch(self) -> None:
        """Poll ``data_version`` and post :class:`DataChanged` when it moves; check that a
        worker serves on each change and every :data:`SERVING_EVERY` seconds."""
        worker = get_current_worker()
        last: int | None = None
        failing = False
        checked = float("-inf")
        while not worker.is_cancelled and not self._stop_watch.is_set():
            try:
                version = self.source.data_version()
                if version != last or time.monotonic() - checked >= SERVING_EVERY:
                    checked = time.monotonic()
                    note = self.describe_workers()
                    if note != self.worker_note:
                        self.call_from_thread(self._worker_note_changed, note)
            except Exception as exc:  # the database went away or is locked: say so once
                if not failing:
                    self.call_from_thread(self.notify, str(exc), title="database", severity="error")
                failing = True
            else:
                failing = False
                if version != last:
                    last = version
                    self.post_message(DataChanged())
            self._stop_watch.wait(self.poll_interval)

    def describe_workers(self) -> str:
        """The banner's text, read in the watcher's thread: :data:`NO_WORKER` when no worker
        holds a current lease on the database, else empty."""
        return "" if self.source.serving() else NO_WORKER

    def _worker_note_changed(self, note: str) -> None:
        self.worker_note = note
        if note:
            self.notify(note, title="worker", severity="warning")

    def on_data_changed(self, _: DataChanged) -> None:
        self.reload_screens()

    def reload_screens(self) -> None:
        """Reload what is visible: the top screen, and those under it down to the first full
        screen; screens further down reload when they come back."""
        visible = True
        for screen in reversed(self.screen_stack):
            if visible and hasattr(screen, "reload"):
                screen.reload()
            elif hasattr(screen, "stale"):
                screen.stale = True
            visible = visible and screen.is_modal
