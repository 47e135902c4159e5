"""RunVerbs: what the operator's keys do, each through the source in a worker thread.

Every verb reports the engine's typed errors (``WorkflowError``: run finished, not
retryable, payload invalid, database busy ...) as a notification titled with the error's
code: the app never crashes on them and never shows a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import work

from engine import RunResult, WorkflowError

from .format import compact_json
from .screens import ConfirmModal, EngineScreen, HelpScreen, SignalModal, TriggerModal

if TYPE_CHECKING:
    from .source import Source

__all__ = ["RunVerbs"]


class RunVerbs:
    """The ``action_*`` methods of :class:`dashboard.DashboardApp` that act on runs."""

    source: Source
    approve_payload: Any
    reject_payload: Any

    # -- helpers ------------------------------------------------------------------------------

    def _selected(self) -> RunResult | None:
        run = getattr(self.screen, "selected_run", lambda: None)()  # type: ignore[attr-defined]
        if run is None:
            self.notify("No run selected.", severity="warning")  # type: ignore[attr-defined]
        return run  # type: ignore[no-any-return]

    @work(thread=True, group="verbs", exit_on_error=False)
    def call(self, what: str, fn: Callable[..., Any], *args: Any, done: Callable[[Any], str] | None = None) -> None:
        """Run ``fn(*args)`` off the event loop; notify its outcome; reload the screens."""
        app: Any = self
        try:
            result = fn(*args)
        except WorkflowError as exc:
            app.call_from_thread(app.notify, exc.message, title=f"{what} failed: {exc.code}", severity="error")
        except Exception as exc:  # not tarry's: still no traceback on screen
            app.call_from_thread(app.notify, f"{type(exc).__name__}: {exc}", title=f"{what} failed", severity="error")
        else:
            if done is not None:
                app.call_from_thread(app.notify, done(result), title=what)
        app.call_from_thread(app.reload_screens)

    # -- the verbs ----------------------------------------------------------------------------

    def action_signal(self) -> None:

        run = self._selected()
        if run is None:
            return
        event = (run.pending or {}).get("event", "") if (run.pending or {}).get("kind") == "event" else ""

        def send(answer: tuple[str, Any] | None) -> None:
            if answer is not None:
                event, payload = answer
                self.call(
                    "signal",
                    self.source.signal,
                    run.run_id,
                    event,
                    payload,
                    done=lambda _: f"{event} sent to {run.run_id}",
                )

        self.push_screen(SignalModal(run.run_id, event), send)  # type: ignore[attr-defined]

    def action_approve(self) -> None:
        self._decide("approve", self.approve_payload)

    def action_reject(self) -> None:
        self._decide("reject", self.reject_payload)

    def _decide(self, verb: str, payload: Any) -> None:

        run = self._selected()
        if run is None:
            return
        pending = run.pending or {}
        if run.status != "suspended" or pending.get("kind") != "event":
            self.notify(f"Run {run.run_id} is not waiting for an event.", title=verb, severity="warning")  # type: ignore[attr-defined]
            return
        event = str(pending["event"])
        question = f"{verb.capitalize()} run {run.run_id}?\nSends {event} {compact_json(payload)}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.call(verb, self.source.signal, run.run_id, event, payload, done=lambda _: f"{run.run_id}: {verb}d")

        self.push_screen(ConfirmModal(question, title=verb.capitalize(), default=True), answered)  # type: ignore[attr-defined]

    def action_cancel_run(self) -> None:

        run = self._selected()
        if run is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("cancel", self.source.cancel, run.run_id, done=lambda r: f"{r.run_id}: {r.status}")

        question = f"Cancel run {run.run_id} ({run.workflow_id}, {run.status})?"
        self.push_screen(ConfirmModal(question, title="Cancel run"), answered)  # type: ignore[attr-defined]

    def action_retry(self) -> None:
        run = self._selected()
        if run is not None:
            self.call("retry", self.source.retry, run.run_id, done=lambda r: f"{r.run_id}: {r.status}")

    def action_trigger(self) -> None:
        self._open_trigger()

    @work(thread=True, group="verbs", exit_on_error=False)
    def _open_trigger(self) -> None:

        app: Any = self
        try:
            workflows = self.source.workflows()
        except WorkflowError as exc:
            app.call_from_thread(app.notify, exc.message, title=f"workflows: {exc.code}", severity="error")
            return

        def start(answer: tuple[str, Any] | None) -> None:
            if answer is not None:
                workflow, payload = answer
                self.call(
                    "trigger",
                    self.source.trigger,
                    workflow,
                    payload,
                    done=lambda r: f"{r.run_id} ({r.workflow_id}): {r.status}",
                )

        app.call_from_thread(app.push_screen, TriggerModal(workflows), start)

    def action_engine(self) -> None:

        self.push_screen(EngineScreen())  # type: ignore[attr-defined]

    def action_help(self) -> None:

        if not isinstance(self.screen, HelpScreen):  # type: ignore[attr-defined]
            self.push_screen(HelpScreen(self.screen.active_bindings))  # type: ignore[attr-defined]
