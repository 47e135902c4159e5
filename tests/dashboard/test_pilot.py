"""Pilot tests against a real SQLite database with runs driven by a real worker.

Textual runs on asyncio while the engine tests run on trio (pytest-trio's ``trio_mode``):
these tests are plain functions that ``asyncio.run`` their scenario, and the worker runs
its own trio loop in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tarry.dashboard import DashboardApp
from tarry.dashboard.screens import ConfirmModal, RunDetailScreen, RunsScreen, SignalModal, TriggerModal
from tarry.dashboard.widgets import JournalTimeline, RunTable
from tarry.identity import default_identity

from .helpers import loaded, wait_for
from .workflows import FIXED

SIZE = (140, 36)
Scenario = Callable[[Pilot[Any], DashboardApp], Awaitable[None]]


def run_app(
    path: Path | str,
    scenario: Scenario,
    notes: list[tuple[str, str, str]] | None = None,
    *,
    size: tuple[int, int] = SIZE,
    **options: Any,
) -> list[tuple[str, str, str]]:
    """Run the dashboard on ``path`` through ``scenario``; returns the notifications shown
    as ``(severity, title, message)`` (also appended to ``notes`` as they come)."""
    notes = [] if notes is None else notes

    async def main() -> None:
        app = DashboardApp(path, **options)
        original = app.notify

        def notify(message: str, *, title: str = "", severity: Any = "information", **kw: Any) -> None:
            notes.append((str(severity), title, str(message)))
            original(message, title=title, severity=severity, **kw)

        app.notify = notify  # type: ignore[method-assign]
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, loaded(pilot, RunsScreen), "the runs table to load")
            await scenario(pilot, app)

    asyncio.run(main())
    return notes


def table(app: DashboardApp) -> RunTable:
    return app.screen_stack[1].query_one(RunTable)


def status_of(app: DashboardApp, run_id: str) -> str | None:
    run = table(app).run(run_id)
    return None if run is None else run.status


async def select(pilot: Pilot[Any], app: DashboardApp, run_id: str) -> None:
    runs = table(app)
    await wait_for(pilot, lambda: run_id in runs.run_ids, f"run {run_id} in the table")
    runs.move_cursor(row=runs.run_ids.index(run_id))
    await wait_for(pilot, lambda: runs.current_run and runs.current_run.run_id == run_id, f"cursor on {run_id}")


@pytest.mark.parametrize("served", ["sqlite", "postgres"], indirect=True)
def test_table_lists_runs_and_updates_in_place(served: tuple[Path | str, Any]) -> None:
    path, client = served
    first = client.trigger("publish", {}, run_id="r-wait")
    client.trigger("quick", {"n": 1}, run_id="r-quick")
    client.wait(first.run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        runs = table(app)
        await wait_for(pilot, lambda: status_of(app, "r-quick") == "completed", "r-quick completed")
        await wait_for(pilot, lambda: status_of(app, "r-wait") == "suspended", "r-wait suspended")
        await select(pilot, app, "r-wait")
        client.trigger("quick", {"n": 2}, run_id="r-new")  # another process commits
        await wait_for(pilot, lambda: status_of(app, "r-new") == "completed", "the new run to show up")
        assert runs.run_ids[0] == "r-new"  # newest first
        assert runs.current_run is not None
        assert runs.current_run.run_id == "r-wait"  # the cursor stayed on its run
        client.signal("r-wait", "review-decision", {"approved": True})
        await wait_for(pilot, lambda: status_of(app, "r-wait") == "completed", "r-wait to complete")
        assert runs.current_run.run_id == "r-wait"

    run_app(path, scenario)


def test_filters_and_search(served: tuple[Path, Any]) -> None:
    path, client = served
    for i in range(3):
        client.trigger("quick", {"n": i, "customer": f"acme-{i}"}, run_id=f"q-{i}")
    client.trigger("flaky", {}, run_id="f-1")
    client.trigger("publish", {}, run_id="p-1")
    for run_id in ("q-0", "q-1", "q-2", "f-1", "p-1"):
        client.wait(run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        runs = table(app)
        screen = app.screen
        await wait_for(pilot, lambda: len(runs.run_ids) == 5, "all five runs")
        await pilot.press("5")
        await wait_for(pilot, lambda: runs.run_ids == ["f-1"], "only the failed run")
        await pilot.press("4")
        await wait_for(pilot, lambda: runs.run_ids == ["p-1"], "only the run waiting for an event")
        await pilot.press("6")
        await wait_for(pilot, lambda: sorted(runs.run_ids) == ["q-0", "q-1", "q-2"], "the completed runs")
        await pilot.press("1", "slash", *"acme-1", "enter")  # payload text
        await wait_for(pilot, lambda: runs.run_ids == ["q-1"], "the search hit")
        assert screen.search == "acme-1"
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: len(runs.run_ids) == 5, "every run again")

    run_app(path, scenario)


def test_signal_modal_rejects_invalid_json_then_sends(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("publish", {}, run_id="p-1").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "p-1")
        await pilot.press("s")
        modal = await wait_for(pilot, lambda: isinstance(app.screen, SignalModal) and app.screen, "the signal modal")
        assert modal.query_one("#event").value == "review-decision"  # pre-filled from the wait
        await pilot.press(*'{"approved": tru')
        await wait_for(pilot, lambda: modal.query_one("#send").disabled, "Send disabled on invalid JSON")
        await pilot.press("ctrl+s")  # refused: nothing is sent
        await pilot.pause()
        assert app.screen is modal
        assert client.get_run("p-1").signals == []
        await pilot.press("e", "}")
        await wait_for(pilot, lambda: not modal.query_one("#send").disabled, "Send enabled on valid JSON")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: status_of(app, "p-1") == "completed", "the run to complete")
        assert client.get_run("p-1").output == {"published": True}

    notes = run_app(path, scenario)
    assert ("error", "Not sent", "invalid JSON at line 1, column 13: Expecting value") in notes or any(
        title == "Not sent" for _, title, _ in notes
    )


@pytest.mark.parametrize("served", ["sqlite", "postgres"], indirect=True)
def test_approve_and_reject(served: tuple[Path | str, Any]) -> None:
    path, client = served
    for run_id in ("p-yes", "p-no"):
        client.wait(client.trigger("publish", {}, run_id=run_id).run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "p-yes")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the approve confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: status_of(app, "p-yes") == "completed", "p-yes to complete")
        await select(pilot, app, "p-no")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the reject confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: status_of(app, "p-no") == "completed", "p-no to complete")

    notes = run_app(path, scenario)
    assert client.get_run("p-yes").output == {"published": True}
    assert client.get_run("p-no").output == {"published": False, "decision": {"approved": False}}
    assert ("information", "approve", "approval sent to p-yes (review-decision)") in notes
    assert ("information", "reject", "rejection sent to p-no (review-decision)") in notes


def test_cancel_asks_first_and_no_is_the_default(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("sleepy", {}, run_id="s-1").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "s-1")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the cancel dialog")
        await pilot.press("enter")  # the focused default: No
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the dialog to close")
        assert client.get_run("s-1").status == "suspended"
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the cancel dialog again")
        await pilot.press("y")
        await wait_for(pilot, lambda: status_of(app, "s-1") == "cancelled", "the run to be cancelled")

    run_app(path, scenario)


def test_retry_a_failed_run_and_errors_become_notifications(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("flaky", {}, run_id="f-1").run_id, timeout=10)
    client.wait(client.trigger("quick", {}, run_id="q-1").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "q-1")
        await pilot.press("R")  # a completed run cannot be retried: a typed error, shown
        await wait_for(pilot, lambda: any("run_not_retryable" in title for _, title, _ in notes), "the error")
        await select(pilot, app, "f-1")
        FIXED["charge"] = True
        await pilot.press("R")
        await wait_for(pilot, lambda: status_of(app, "f-1") == "completed", "the retried run to complete")

    notes: list[tuple[str, str, str]] = []
    run_app(path, scenario, notes)
    assert client.get_run("f-1").output == "charged"
    assert any(sev == "error" and "run_not_retryable" in title for sev, title, _ in notes)


def test_detail_screen_shows_the_timeline(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("sleepy", {"seconds": 0.3}, run_id="s-1").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "s-1")
        await pilot.press("enter")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, "the detail")
        timeline = screen.query_one(JournalTimeline)
        await wait_for(pilot, lambda: timeline.row_count == 2, "prepare and nap in the timeline")
        # the sleep ends and the detail follows without a key press
        await wait_for(pilot, lambda: screen.info.status == "completed", "the run to complete", timeout=15)
        await wait_for(pilot, lambda: timeline.get_row_at(1)[3].plain.endswith("completed"), "the nap completed")
        assert [timeline.get_row_at(i)[1].plain for i in range(timeline.row_count)] == ["prepare", "nap"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "back to the runs")

    run_app(path, scenario)


def test_detail_screen_shows_who_sent_each_signal_and_who_triggered(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("publish", {}, run_id="p-1", by="alice").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "p-1")
        await pilot.press("a")  # approved from the dashboard: recorded as its USER@HOST
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the approve confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: status_of(app, "p-1") == "completed", "p-1 to complete")
        await pilot.press("enter")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, "the detail")
        signals = screen.query_one("#signals", DataTable)
        await wait_for(pilot, lambda: signals.row_count == 1, "the signal in the table")
        assert str(signals.get_row_at(0)[4]) == default_identity()
        summary = str(screen.query_one("#summary", Static).render())
        assert "triggered by alice" in summary

    run_app(path, scenario)
    assert client.get_run("p-1").signals[0].sent_by == default_identity()


def test_trigger_a_run_from_the_modal(served: tuple[Path, Any]) -> None:
    path, _ = served

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await pilot.press("t")
        modal = await wait_for(pilot, lambda: isinstance(app.screen, TriggerModal) and app.screen, "the trigger modal")
        modal.query_one("#workflow").value = "quick"
        modal.query_one("#json").text = '{"n": 42}'
        await wait_for(pilot, lambda: not modal.query_one("#send").disabled, "a valid payload")
        await pilot.press("ctrl+s")
        runs = table(app)
        await wait_for(
            pilot, lambda: len(runs.run_ids) == 1 and runs.run(runs.run_ids[0]).status == "completed", "the run"
        )
        assert runs.run(runs.run_ids[0]).output == {"done": 42}

    run_app(path, scenario)


def test_read_only_hides_every_action(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("sleepy", {}, run_id="s-1").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "s-1")
        shown = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not shown & {"signal", "approve", "reject", "cancel_run", "retry", "trigger"}
        await pilot.press("c", "s", "t")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert client.get_run("s-1").status == "suspended"

    run_app(path, scenario, read_only=True)


def test_command_palette_offers_actions_and_filters(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("flaky", {}, run_id="f-1").run_id, timeout=10)
    client.wait(client.trigger("sleepy", {}, run_id="s-1").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        runs = table(app)
        await wait_for(pilot, lambda: len(runs.run_ids) == 2, "both runs")
        await pilot.press("ctrl+p", *"filter: failed")
        await wait_for(pilot, lambda: app.screen.query("CommandList").first().option_count > 0, "a palette hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: runs.run_ids == ["f-1"], "the failed filter applied")
        await pilot.press("1")
        await select(pilot, app, "s-1")
        await pilot.press("ctrl+p", *"run: cancel")
        await wait_for(pilot, lambda: app.screen.query("CommandList").first().option_count > 0, "a palette hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the cancel dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: status_of(app, "s-1") == "cancelled", "the run cancelled")

    run_app(path, scenario)
