"""WorkerBanner: one line that says when no worker serves the database."""

from __future__ import annotations

from textual.widgets import Static

__all__ = ["WorkerBanner"]


class WorkerBanner(Static):
    """Shows the app's ``worker_note`` (see :meth:`tarry.dashboard.DashboardApp.describe_workers`)
    and takes no room while it is empty, that is while a worker serves."""

    def __init__(self) -> None:
        super().__init__("", id="worker-banner", markup=False)
        self.display = False

    def on_mount(self) -> None:
        if hasattr(self.app, "worker_note"):
            self.watch(self.app, "worker_note", self._show)

    def _show(self, note: str) -> None:
        self.update(note)
        self.display = bool(note)
