"""Snapshots of the main screens over frozen data (fixed run ids, a frozen "now").

A change in these pictures is a deliberate layout change: review the SVG diff, then
``pytest tests/dashboard --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tarry.dashboard import DashboardApp
from tarry.dashboard.screens import ConfirmModal, EngineScreen, RunDetailScreen, RunsScreen, SignalModal, TriggerModal

from .fakes import NOW, FakeClient
from .helpers import loaded, wait_for

SIZE = (120, 32)


def make_app(**kwargs: Any) -> DashboardApp:
    return DashboardApp(FakeClient(), clock=lambda: NOW, **kwargs)


async def runs_loaded(pilot: Pilot[Any]) -> None:
    await wait_for(pilot, loaded(pilot, RunsScreen), "the runs table to load")
    await pilot.pause()


def test_runs_screen(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=runs_loaded)


def test_runs_screen_read_only(snap_compare: Any) -> None:
    assert snap_compare(make_app(read_only=True), terminal_size=SIZE, run_before=runs_loaded)


def test_needs_approval(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await runs_loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("RunTable").run_ids == ["run-0002"], "approvals")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


async def open_run(pilot: Pilot[Any], run_id: str) -> None:
    await runs_loaded(pilot)
    pilot.app.push_screen(RunDetailScreen(run_id))
    await wait_for(pilot, loaded(pilot, RunDetailScreen), f"the detail of {run_id}")
    await pilot.pause()


def test_run_detail_waiting(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, "run-0002")

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)


def test_run_detail_failed(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, "run-0004")

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)


def test_run_detail_completed_with_signal(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, "run-0005")

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)


def test_signal_modal_invalid_json(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, "run-0002")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SignalModal), "the signal modal")
        await pilot.press("backspace", *'{"approved": tru')
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#send").disabled, "Send to be disabled")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_cancel_confirm(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await runs_loaded(pilot)
        await pilot.press("down", "down", "down", "down")  # run-0003, sleeping
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirm dialog")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_engine_screen(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await runs_loaded(pilot)
        await pilot.press("e")
        await wait_for(
            pilot, lambda: isinstance(pilot.app.screen, EngineScreen) and pilot.app.screen.info, "engine info"
        )

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await runs_loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen", "the help screen")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_runs_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=runs_loaded)


def test_runs_screen_80x24_no_worker(snap_compare: Any) -> None:
    client = FakeClient()
    client.workers = 0

    async def run_before(pilot: Pilot[Any]) -> None:
        await runs_loaded(pilot)
        await wait_for(pilot, lambda: pilot.app.worker_note, "the no-worker banner")
        await pilot.pause()

    assert snap_compare(DashboardApp(client, clock=lambda: NOW), terminal_size=(80, 24), run_before=run_before)


def test_trigger_modal_keeps_the_text_and_shows_a_schema_error_80x24(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await runs_loaded(pilot)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, TriggerModal), "the trigger dialog")
        await pilot.press(*'"order_id": "o-9"', "ctrl+s")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#trigger-error").display, "the schema error")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)
