"""Durability across a killed process: SIGKILL a runtime mid-flight, start another on the file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.restart_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["serve", "sweep"])
def test_killed_process_loses_nothing(tmp_path: Path, mode: str) -> None:
    db = str(tmp_path / "tarry.db")
    first = child("start", db, str(tmp_path))
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert line.strip() == "READY", first.stderr.read() if first.stderr else line
    finally:
        first.send_signal(signal.SIGKILL)  # no cleanup, no flush: a crash
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL

    (tmp_path / "fast").touch()  # from now on the slow step finishes at once
    second = child("resume", db, str(tmp_path), mode)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    runs = json.loads(out)

    assert {run_id: run["status"] for run_id, run in runs.items()} == dict.fromkeys(runs, "completed")
    assert runs["sleeper"]["output"] == "b"
    assert runs["waiter"]["output"] == {"ok": True}
    assert runs["midstep"]["output"] == "slow"
    effects = (tmp_path / "effects.log").read_text().split()
    # Committed steps never ran again; only the step the kill interrupted ran twice.
    assert effects.count("A") == 2  # once in sleeper, once in midstep
    assert effects.count("B") == 1
    assert effects.count("after") == 1
    assert effects.count("slow-start") == 2
    assert effects.count("slow-end") == 1
    slow = [h for h in runs["midstep"]["history"] if h["step_id"] == "slow"]
    assert len(slow) == 1
    assert slow[0]["status"] == "completed"
