"""``tarry dev``: a worker embedded in the dashboard (trio guest mode), and the CLI entry points."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tarry import Client, SQLiteStore, create_runtime
from tarry.dashboard.cli import dashboard, dev
from tarry.dashboard.dev import DevApp, dev_runtime
from tarry.dashboard.screens import RunsScreen
from tarry.dashboard.widgets import RunTable

from .engine_thread import WorkerThread
from .helpers import loaded, wait_for
from .workflows import ALL, quick


def test_dev_drives_runs_and_quits_cleanly_leaving_sleepers_for_the_next_worker(tmp_path: Path) -> None:
    path = tmp_path / "dev.db"

    async def main() -> None:
        app = DevApp(ALL, path)
        async with app.run_test(size=(140, 36)) as pilot:
            await wait_for(pilot, loaded(pilot, RunsScreen), "the runs table")
            runs = app.screen.query_one(RunTable)
            with Client(path) as other:  # as from another process
                other.trigger("quick", {"n": 7}, run_id="q-1")
                other.trigger("sleepy", {"seconds": 1.0}, run_id="s-1")

            def status(run_id: str) -> str | None:
                run = runs.run(run_id)
                return None if run is None else run.status

            await wait_for(pilot, lambda: status("q-1") == "completed", "the triggered run to complete")
            await wait_for(pilot, lambda: status("s-1") == "suspended", "the sleeper to sleep")
            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(main())
    with Client(path) as client:
        assert client.get_run("q-1").output == {"done": 7}
        assert client.get_run("s-1").status == "suspended"  # not lost, not run early
        assert not client.engine_info().worker_alive  # the lease was released on quit
        with WorkerThread(path, ALL):
            deadline = time.monotonic() + 15
            while client.get_run("s-1").status != "completed":
                assert time.monotonic() < deadline, "the next worker did not finish the sleeper"
                time.sleep(0.02)
        assert client.get_run("s-1").output == "woke"


def test_dev_runtime_serves_the_file(tmp_path: Path) -> None:
    runtime = dev_runtime(create_runtime([quick]), tmp_path / "a.db")  # default memory store
    assert isinstance(runtime.store, SQLiteStore)
    assert runtime.store.path == tmp_path / "a.db"
    assert list(dev_runtime([quick], tmp_path / "b.db").workflows) == ["quick"]


def test_cli_errors_are_one_line(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("TARRY_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(dashboard, [])  # ./tarry.db, as every tarry command, and it is not there
    assert result.exit_code == 2
    assert "no tarry database at 'tarry.db'" in result.output
    result = runner.invoke(dev, ["no_such_module_here:x", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "cannot import" in result.output
    result = runner.invoke(dashboard, ["--db", str(tmp_path / "typo.db")])
    assert result.exit_code == 2
    assert "there is no tarry database" in result.output
    assert not (tmp_path / "typo.db").exists()
    result = runner.invoke(dashboard, ["--db", str(tmp_path / "typo.db"), "--approve", "{nope"])
    assert result.exit_code == 2
    assert "--approve" in result.output
    (tmp_path / "junk.db").write_text("not a database at all, just text " * 100)
    result = runner.invoke(dashboard, ["--db", str(tmp_path / "junk.db")])
    assert result.exit_code == 2
    assert "not a tarry database" in result.output
    assert "Traceback" not in result.output


def test_dashboard_as_names_who_its_actions_are_recorded_as(tmp_path: Path, monkeypatch: Any) -> None:
    from tarry import Client
    from tarry.dashboard.app import DashboardApp
    from tarry.identity import default_identity

    db = tmp_path / "t.db"
    Client(db).close()
    seen: list[str] = []
    monkeypatch.setattr(DashboardApp, "run", lambda self: seen.append(self.source.client.identity))
    runner = CliRunner()
    assert runner.invoke(dashboard, ["--db", str(db), "--as", "ana@example.com"]).exit_code == 0
    assert runner.invoke(dashboard, ["--db", str(db)]).exit_code == 0
    assert seen == ["ana@example.com", default_identity()]
    refused = runner.invoke(dashboard, ["--db", str(db), "--as", "a\nb"])
    assert refused.exit_code == 2  # bad input, as for every tarry command
    assert "identity" in refused.output
    assert "Traceback" not in refused.output
