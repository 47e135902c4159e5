"""The dashboard at 80x24 and with no worker serving: nothing essential cut off, and
nothing said that did not happen. Real databases, real workers, Textual's Pilot."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from tarry import Client
from tarry.dashboard import DashboardApp
from tarry.dashboard.app import NO_WORKER
from tarry.dashboard.dev import DevApp
from tarry.dashboard.screens import ConfirmModal, HelpScreen, RunsScreen, TriggerModal
from tarry.dashboard.screens.help import help_rows
from tarry.dashboard.widgets import StatusCounts, WorkerBanner

from .engine_thread import WorkerThread
from .helpers import loaded, wait_for
from .test_pilot import run_app, select, status_of, table
from .workflows import ALL

SMALL = (80, 24)


def banner_text(app: DashboardApp) -> str:
    banner = app.screen.query_one(WorkerBanner)
    return str(banner.content) if banner.display else ""


def test_80x24_shows_every_essential_column_and_every_filter(served: tuple[Path, Any]) -> None:
    path, client = served
    for who, what in (("ana", "lunch"), ("gus", "laptop")):  # run ids: 32-digit UUIDv7s
        client.wait(client.trigger("publish", {"customer": who, "item": what}).run_id, timeout=10)
    client.wait(client.trigger("quick", {"n": 1}).run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        runs = table(app)
        await wait_for(pilot, lambda: len(runs.run_ids) == 3, "the three runs")
        assert {"run", "workflow", "status", "waiting", "waited", "payload", "age"} <= set(runs.shown_columns)
        assert runs.virtual_size.width <= runs.size.width  # no column past the right edge
        column = runs.shown_columns.index
        rows = {run_id: [cell.plain for cell in runs.get_row(run_id)] for run_id in runs.run_ids}
        for run_id, row in rows.items():  # a prefix that tells them apart, not 32 digits
            shown = row[column("run")]
            assert shown.endswith("…"), shown
            assert run_id.startswith(shown[:-1])
            assert len(shown) < 20
        assert len({row[column("run")] for row in rows.values()}) == 3
        waiting = [row for row in rows.values() if row[column("status")] == "suspended"]
        assert sorted(row[column("payload")] for row in waiting) == ["ana lunch", "gus laptop"]
        for row in waiting:
            assert row[column("waiting")].startswith("review-decision")
            assert re.fullmatch(r"\d+(ms|s)", row[column("waited")]), row
        counts = app.screen.query_one(StatusCounts)
        lines = counts.render().plain.splitlines()
        assert all(len(line) <= counts.size.width for line in lines), lines
        assert all(f" {key} " in counts.render().plain for key in "1234567")
        await pilot.press("7")
        await wait_for(pilot, lambda: counts.active == "cancelled" and runs.run_ids == [], "the last filter")
        await pilot.press("4")
        await wait_for(pilot, lambda: len(runs.run_ids) == 2, "the runs needing approval")

    run_app(path, scenario, size=SMALL)


def test_80x24_footer_fits_and_help_lists_every_key_enter_included(served: tuple[Path, Any]) -> None:
    path, client = served
    client.wait(client.trigger("publish", {}, run_id="p-1").run_id, timeout=10)

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await select(pilot, app, "p-1")
        footer = app.screen.query_one(Footer)
        wanted = {"enter", "slash", "a", "question_mark", "q"}
        await wait_for(pilot, lambda: wanted <= {k.key for k in footer.query(FooterKey)}, "the footer's keys")
        await pilot.pause()
        keys = list(footer.query(FooterKey))
        assert all(key.region.right <= SMALL[0] for key in keys), [(k.key, k.region) for k in keys]
        active = app.screen.active_bindings
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        rows = help_rows(app, app.screen.shown_bindings)
        assert rows[:2] == [
            ("1-7", "Filter: all, running, suspended, needs approval, failed, completed, cancelled"),
            ("enter", "Open — The run's detail: payload, journal, signals, error"),
        ]
        listed = {key.strip() for keys, _ in rows for key in keys.split(",")} | {str(k) for k in range(1, 8)}
        for key, binding in active.items():
            if binding.binding.description:
                shown = "enter" if key == "enter" else app.get_key_display(binding.binding)
                assert shown in listed, f"{key} is in neither the footer nor the help"

    run_app(path, scenario, size=SMALL)


def test_without_a_worker_a_banner_shows_and_an_approval_says_it_is_only_stored(tmp_path: Path) -> None:
    path = tmp_path / "dash.db"
    with WorkerThread(path, ALL), Client(path) as client:
        client.wait(client.trigger("publish", {}, run_id="p-1").run_id, timeout=10)
    # the worker stopped and released its lease: nothing serves the file any more

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await wait_for(pilot, lambda: banner_text(app) == NO_WORKER, "the no-worker banner")
        await select(pilot, app, "p-1")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the approve confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: any(title == "approve" for _, title, _ in notes), "the approve message")
        severity, _, message = next(n for n in notes if n[1] == "approve")
        assert severity == "warning"
        assert message.startswith("approve stored for p-1: no worker serves the database")
        assert "approved" not in message
        assert client.get_run("p-1").status == "suspended"
        with WorkerThread(path, ALL):
            await wait_for(pilot, lambda: banner_text(app) == "", "the banner to go once a worker serves")
            await wait_for(pilot, lambda: status_of(app, "p-1") == "completed", "the stored approval taken")

    notes: list[tuple[str, str, str]] = []
    with Client(path) as client:
        run_app(path, scenario, notes, size=SMALL)
    assert ("warning", "worker", NO_WORKER) in notes


def test_trigger_dialog_keeps_the_text_on_a_schema_error(served: tuple[Path, Any]) -> None:
    path, client = served

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        await pilot.press("t")
        modal = await wait_for(pilot, lambda: isinstance(app.screen, TriggerModal) and app.screen, "the dialog")
        editor = modal.query_one("#json")
        await wait_for(pilot, lambda: editor.has_focus, "the cursor in the editor")
        modal.query_one("#workflow").value = "order"
        await pilot.press(*'"customer": "ana"')
        assert editor.text == '{"customer": "ana"}'  # typed inside the {}
        await pilot.press("ctrl+s")
        error = modal.query_one("#trigger-error")
        await wait_for(pilot, lambda: error.display and "payload_invalid" in str(error.content), "the error")
        assert "item" in str(error.content)
        assert app.screen is modal
        assert editor.text == '{"customer": "ana"}'
        assert client.list_runs() == []  # nothing written
        await pilot.press(*', "item": "lunch"')
        await wait_for(pilot, lambda: not error.display, "the error to clear on an edit")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the dialog to close")
        runs = table(app)
        await wait_for(pilot, lambda: len(runs.run_ids) == 1, "the new run")
        assert client.wait(runs.run_ids[0], timeout=10).output == "ana: lunch"

    run_app(path, scenario, size=SMALL)


def test_dev_says_it_stands_by_while_another_worker_serves(tmp_path: Path) -> None:
    path = tmp_path / "dev.db"
    notes: list[tuple[str, str]] = []

    async def main() -> None:
        app = DevApp(ALL, path)
        original = app.notify

        def notify(message: str, *, title: str = "", **kw: Any) -> None:
            notes.append((title, str(message)))
            original(message, title=title, **kw)

        app.notify = notify  # type: ignore[method-assign]
        with WorkerThread(path, ALL) as other:
            async with app.run_test(size=SMALL) as pilot:
                await wait_for(pilot, loaded(pilot, RunsScreen), "the runs table")
                await wait_for(pilot, lambda: "stands by" in banner_text(app), "the standby banner")
                assert other.worker.owner in banner_text(app)
                assert any(title == "worker" and "stands by" in message for title, message in notes)
                await pilot.press("q")

    asyncio.run(main())
