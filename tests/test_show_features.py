"""`tarry show` and the dashboard's run detail show retries, child runs, patches and queued runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import trio
import trio.testing
from click.testing import CliRunner

from tarry import Retry, SQLiteStore, create_runtime, workflow
from tarry.cli import cli
from tarry.dashboard.app import DashboardApp
from tarry.dashboard.screens import RunDetailScreen, RunsScreen
from tarry.dashboard.widgets import JournalTimeline, RunTable
from tests.dashboard.helpers import loaded, wait_for

tries: list[int] = []


async def flaky() -> str:
    tries.append(1)
    if len(tries) < 3:
        raise ConnectionError(f"refused {len(tries)}")
    return "charged"


@workflow("receipt")
async def receipt(ctx: Any) -> Any:
    return {"receipt": ctx.payload}


@workflow("checkout")
async def checkout(ctx: Any) -> Any:
    await ctx.step("charge", flaky, retry=Retry(max_attempts=3, initial=1))
    if ctx.patched("receipts"):
        made = await ctx.child("receipt", receipt, "r-1")
    else:  # pragma: no cover - the old path of runs older than the patch
        made = None
    return made


def make_db(tmp_path: Path) -> Path:
    db = tmp_path / "tarry.db"
    tries.clear()

    async def main() -> None:
        store = SQLiteStore(db)
        runtime = create_runtime(workflows=[checkout, receipt], store=store)
        async with runtime:
            await runtime.trigger(checkout, None, run_id="c-1")
            while (await runtime.get_run("c-1")).status != "completed":
                await trio.sleep(0.5)
        await store.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.005))
    return db


def test_show_prints_attempts_children_and_patches(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    shown = CliRunner().invoke(cli, ["--db", str(db), "show", "c-1"], prog_name="tarry", terminal_width=200)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "attempt 1: ConnectionError: refused 1" in text
    assert "attempt 2: ConnectionError: refused 2" in text
    assert "took the new code of patch 'receipts'" in text
    assert "child run c-1:receipt (receipt)" in text
    assert "Child runs c-1:receipt" in text
    child = CliRunner().invoke(cli, ["--db", str(db), "show", "c-1:receipt"], prog_name="tarry", terminal_width=200)
    assert "Parent run c-1" in " ".join(child.output.split())


def test_the_run_detail_screen_shows_them_too(tmp_path: Path) -> None:
    db = make_db(tmp_path)

    async def main() -> None:
        app = DashboardApp(db)
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_for(pilot, loaded(pilot, RunsScreen), "the runs table")
            runs = app.screen.query_one(RunTable)
            await wait_for(pilot, lambda: "c-1" in runs.run_ids, "c-1 in the table")
            runs.move_cursor(row=runs.run_ids.index("c-1"))
            await pilot.press("enter")
            screen = await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, "detail")
            timeline = screen.query_one(JournalTimeline)
            await wait_for(pilot, lambda: timeline.row_count == 3, "three journal entries")
            cells = [" ".join(str(c) for c in timeline.get_row_at(i)) for i in range(3)]
            assert "#1 ConnectionError: refused 1; #2 ConnectionError: refused 2;" in cells[0]
            assert "new code of receipts" in cells[1]
            assert 'child c-1:receipt: {"receipt": "r-1"}' in cells[2]
            summary = str(screen.query_one("#summary").render())
            assert "children: c-1:receipt" in summary

    asyncio.run(main())
