"""The crash torture harness, short: a few kills of real worker processes in each mode, and
the checker catching a database that lost or duplicated something.

The full run (``python -m bench.torture --cycles 100``) is in docs/reliability.md
(its figures); CI runs this short one on every submission.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench.torture import Checker

ROOT = Path(__file__).resolve().parent.parent


def torture(directory: Path, mode: str, cycles: int = 3, seed: int = 11) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bench.torture", "--cycles", str(cycles), "--seed", str(seed), "--mode", mode,
         "--runs", "60", "--min-wait", "0.3", "--max-wait", "1.0", "--settle", "60", "--dir", str(directory)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["violations"] == 0
    assert figures["kills"] == cycles
    assert figures["runs"] >= 60
    return figures


@pytest.mark.parametrize("mode", ["kill", "term", "standby", "sweep"])
def test_a_short_torture_run_finds_nothing_lost(tmp_path: Path, mode: str) -> None:
    figures = torture(tmp_path, mode)
    assert figures["effects"] > figures["runs"]  # the runs did their steps
    if mode == "term":
        assert figures["effects_duplicated"] == 0
        assert figures["steps_in_flight_at_kills"] == 0
    assert figures["effects_duplicated"] <= figures["steps_in_flight_at_kills"]
    if mode == "sweep":  # cron processes came and went, no worker at all
        assert figures["workers_started"] > figures["kills"]


@pytest.fixture(scope="module")
def tortured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database the harness found nothing wrong with, every run ended."""
    directory = tmp_path_factory.mktemp("tortured")
    torture(directory, "kill", cycles=2, seed=5)
    return directory


def tamper(directory: Path, tmp_path: Path, *statements: str) -> Checker:
    """A copy of the tortured directory with ``statements`` applied to its database."""
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(directory), str(copy)], check=True)
    conn = sqlite3.connect(copy / "torture.db")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return Checker(copy / "torture.db", copy, "kill")


def test_the_checker_passes_the_untouched_database(tortured: Path, tmp_path: Path) -> None:
    checker = tamper(tortured, tmp_path)
    checker.check(final=True)
    assert checker.violations == []


@pytest.mark.parametrize(
    ("statements", "violation"),
    [
        (["DELETE FROM entries WHERE run_id = (SELECT min(run_id) FROM runs WHERE workflow_id = 't-chain') AND step_id = 'nap'"],
         "journal"),
        (["DELETE FROM runs WHERE run_id = (SELECT max(run_id) FROM runs WHERE workflow_id = 't-chain')"],
         "not in the database"),
        (["UPDATE runs SET output = '\"forged\"' WHERE run_id = (SELECT min(run_id) FROM runs WHERE workflow_id = 't-flaky')"],
         "returned 'forged'"),
        (["UPDATE runs SET status = 'running' WHERE run_id = (SELECT min(run_id) FROM runs WHERE workflow_id = 't-doomed')"],
         "still running"),
        (["DELETE FROM signals WHERE id = (SELECT min(id) FROM signals WHERE event = 'approve')"], "stored 0 times"),
        (["UPDATE signals SET consumed_at = NULL WHERE event = 'approve'"], "without consuming its approval"),
    ],
)  # fmt: skip
def test_the_checker_finds_what_a_database_lost(
    tortured: Path, tmp_path: Path, statements: list[str], violation: str
) -> None:
    checker = tamper(tortured, tmp_path, "PRAGMA foreign_keys = OFF", *statements)
    checker.check(final=True)
    assert any(violation in v for v in checker.violations), checker.violations


def test_the_checker_finds_a_side_effect_that_ran_twice(tortured: Path, tmp_path: Path) -> None:
    checker = tamper(tortured, tmp_path)
    lines = [line.split(" ") for line in (checker.directory / "effects.log").read_text().splitlines()]
    pid, run_id, step_id = next(e for e in lines if not checker.in_flight[(e[1], e[2])])
    with (checker.directory / "effects.log").open("a") as log:
        log.write(f"{pid} {run_id} {step_id}\n")
    checker.check(final=True)
    assert any(f"run {run_id}, step {step_id}: side effect ran 2 times" in v for v in checker.violations)
