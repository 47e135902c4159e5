"""RunTable.sync: keyed rows, only what changed is touched, the cursor stays on its run."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from textual.app import App, ComposeResult

from tarry import RunResult
from tarry.dashboard.widgets import RunTable
from tarry.dashboard.widgets.run_table import COLUMNS, fit_columns, id_width

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


def test_columns_fit_the_width_dropping_the_step_and_update_time_first() -> None:
    natural = {"run": 11, "workflow": 16, "status": 9, "step": 6, "waiting": 30, "waited": 2, "payload": 23, "age": 2}
    wide = fit_columns(140, natural)
    assert [c.key for c, _ in wide] == [c.key for c in COLUMNS]
    narrow = fit_columns(78, natural)  # 80 columns less the scrollbar
    assert [c.key for c, _ in narrow] == ["run", "workflow", "status", "waiting", "waited", "payload", "age"]
    widths = {c.key: w for c, w in narrow}
    assert sum(widths.values()) + len(narrow) <= 78
    assert widths["run"] == 11  # the id prefix that tells runs apart is never cut
    assert widths["waiting"] >= 20  # the payload and workflow give way first
    assert widths["payload"] >= 10


def test_id_width_is_the_prefix_that_tells_ids_apart() -> None:
    assert id_width(["a", "bb"]) == 2  # short ids whole
    uuids = ["01a2528641197f1eb7ab46f145c6233e", "01a25286428c7fd8909ad0ea6d375f7b"]
    assert id_width(uuids) == 11  # 10 characters of prefix and the ellipsis
    burst = ["01a2528641197f1eb7ab46f145c6233e", "01a2528641197f2eb7ab46f145c6233e"]
    assert id_width(burst) == 16  # made in the same millisecond: a longer prefix
    assert id_width(["order-2026-11-26-0001", "order-2026-11-26-0002"]) == 21  # whole when a prefix won't do
