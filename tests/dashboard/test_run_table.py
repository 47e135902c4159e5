"""RunTable.sync: keyed rows, only what changed is touched, the cursor stays on its run."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from textual.app import App, ComposeResult

from dashboard.widgets import RunTable
from engine import RunResult

from .fakes import NOW


def run(run_id: str, minutes_ago: int, status: str = "completed") -> RunResult:
    at = NOW - timedelta(minutes=minutes_ago)
    return RunResult(run_id, "quick", status, created_at=at, updated_at=at, last_step="work")


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield RunTable()


def test_sync_touches_only_changed_rows_and_keeps_the_cursor() -> None:
    async def main() -> None:
        app = TableApp()
        async with app.run_test() as pilot:
            table = app.query_one(RunTable)
            runs = [run("c", 1, "running"), run("b", 2), run("a", 3)]
            assert table.sync(runs, NOW) == 3
            table.move_cursor(row=1)  # on "b"
            await pilot.pause()
            assert table.sync(runs, NOW) == 0  # nothing changed, nothing touched
            runs[0] = replace(runs[0], status="completed")
            assert table.sync(runs, NOW) == 1
            assert table.get_row("c")[2].plain == "completed"
            assert table.sync([run("d", 0), *runs], NOW) == 1  # a new run on top
            assert table.run_ids == ["d", "c", "b", "a"]
            assert table.current_run is not None
            assert table.current_run.run_id == "b"  # the cursor followed its run
            assert table.sync([run("d", 0), runs[0], runs[2]], NOW) == 1  # "b" went away
            assert table.run_ids == ["d", "c", "a"]
            fresh = [run(f"n{i}", i) for i in range(10)]
            assert table.sync(fresh, NOW) == 13  # another page: rebuilt in one go
            assert table.run_ids == [r.run_id for r in fresh]

    asyncio.run(main())
