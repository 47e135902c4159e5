"""RunVerbs: what the operator's keys do, each through the source in a worker thread.

Every verb reports the engine's typed errors (``WorkflowError``: run finished, not
retryable, payload invalid, database busy ...) as a notification titled with the error's
code: the app never crashes on them and never shows a traceback.

A verb's message says what happened and no more: with no worker serving the database, a
signal, an approval, a retry or a trigger is stored and waits for one, and the message says
so (as a warning) instead of claiming the run moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import work

from tarry import RunResult, WorkflowError

from .format import compact_json
from .screens import ConfirmModal, EngineScreen, HelpScreen, SignalModal, TriggerModal

if TYPE_CHECKING:
    from .source import Source

__all__ = ["RunVerbs"]

#: What ``a`` and ``r`` send, as their messages name it.
_NOUNS = {"approve": "approval", "reject": "rejection"}
#: How a message ends when what it did waits for a worker.
WAITS = ": no worker serves the database, it takes effect when one starts"


def _cancelled(run: RunResult, serving: bool) -> str:
    """A suspended run ends cancelled in the call; a running one is asked to stop."""
    if run.status == "cancelled":
        return f"{run.run_id}: cancelled"
    if serving:
        return f"{run.run_id}: cancel requested, the worker stops it"
    return f"cancel stored for {run.run_id}{WAITS}"


class RunVerbs:
    """The ``action_*`` methods of :class:`tarry.dashboard.DashboardApp` that act on runs."""

    source: Source
    approve_payload: Any
    reject_payload: Any

    # -- helpers ------------------------------------------------------------------------------

    def _selected(self) -> RunResult | None:
        run = getattr(self.screen, "selected_run", lambda: None)()  # type: ignore[attr-defined]
        if run is None:
            self.notify("No run selected.", severity="warning")  # type: ignore[attr-defined]
        return run

    @work(thread=True, group="verbs", exit_on_error=False)
    def call(
        self, what: str, fn: Callable[..., Any], *args: Any, done: Callable[[Any, bool], str] | None = None
    ) -> None:
        """Run ``fn(*args)`` off the event loop; notify its outcome, ``done(result, serving)``
        (``serving``: whether a worker serves the database now; a warning when not); reload
        the screens."""
        app: Any = self
        try:
            result = fn(*args)
        except WorkflowError as exc:
            app.call_from_thread(app.notify, exc.message, title=f"{what} failed: {exc.code}", severity="error")
        except Exception as exc:  # not tarry's: still no traceback on screen
            app.call_from_thread(app.notify, f"{type(exc).__name__}: {exc}", title=f"{what} failed", severity="error")
        else:
            if done is not None:
                serving = self._serving()
                severity = "information" if serving else "warning"
                app.call_from_thread(app.notify, done(result, serving), title=what, severity=severity)
        app.call_from_thread(app.reload_screens)

    def _serving(self) -> bool:
        try:
            return bool(self.source.serving())
        except Exception:  # cannot tell: say what was stored, not that it moved
            return False

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
                    done=lambda _, serving: (
                        f"{event} sent to {run.run_id}" if serving else f"{event} stored for {run.run_id}{WAITS}"
                    ),
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
                self.call(
                    verb,
                    self.source.signal,
                    run.run_id,
                    event,
                    payload,
                    done=lambda _, serving: (
                        f"{_NOUNS[verb]} sent to {run.run_id} ({event})"
                        if serving
                        else f"{verb} stored for {run.run_id}{WAITS}"
                    ),
                )

        self.push_screen(ConfirmModal(question, title=verb.capitalize(), default=True), answered)  # type: ignore[attr-defined]

    def action_cancel_run(self) -> None:

        run = self._selected()
        if run is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("cancel", self.source.cancel, run.run_id, done=_cancelled)

        question = f"Cancel run {run.run_id} ({run.workflow_id}, {run.status})?"
        self.push_screen(ConfirmModal(question, title="Cancel run"), answered)  # type: ignore[attr-defined]

    def action_retry(self) -> None:
        run = self._selected()
        if run is not None:
            self.call(
                "retry",
                self.source.retry,
                run.run_id,
                done=lambda r, serving: f"{r.run_id}: retrying" if serving else f"retry stored for {r.run_id}{WAITS}",
            )

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

        def trigger(workflow: str, payload: Any) -> tuple[RunResult, bool]:  # in the modal's thread
            return self.source.trigger(workflow, payload), self._serving()

        def started(answer: tuple[RunResult, bool] | None) -> None:
            if answer is None:
                return
            run, serving = answer
            message = f"{run.run_id} ({run.workflow_id}): {run.status}"
            if not serving:
                message = f"{run.run_id} ({run.workflow_id}) stored{WAITS}"
            app.notify(message, title="trigger", severity="information" if serving else "warning")
            app.reload_screens()

        app.call_from_thread(app.push_screen, TriggerModal(workflows, trigger), started)

    def action_engine(self) -> None:

        self.push_screen(EngineScreen())  # type: ignore[attr-defined]

    def action_help(self) -> None:

        if not isinstance(self.screen, HelpScreen):  # type: ignore[attr-defined]
            self.push_screen(HelpScreen(self.screen.active_bindings))  # type: ignore[attr-defined]
