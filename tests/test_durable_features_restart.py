"""Retries, parallel steps, child runs, multi-event waits, versions and deadlines across a
SIGKILLed real process (tests/features_child.py is the process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tarry import Client

ROOT = Path(__file__).resolve().parent.parent


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.features_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.subprocess
def test_the_durable_features_survive_a_killed_process(tmp_path: Path) -> None:
    db = str(tmp_path / "tarry.db")
    first = child("start", db, "-", str(tmp_path))
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert line.strip() == "READY", first.stderr.read() if first.stderr else line
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    killed_at = time.time()

    # While no process runs: a client sends the decision, and the deadline passes.
    with Client(db) as client:
        client.signal("decide", "approved", {"by": "ann"})
    (tmp_path / "fast").touch()
    time.sleep(max(0.0, 1.0 - (time.time() - killed_at)))

    second = child("resume", db, "-", str(tmp_path))
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    runs = json.loads(out)
    effects = (tmp_path / "effects.log").read_text().split()

    # Retries: attempt 1 before the kill, 2 and 3 after it; none repeated or forgotten.
    assert runs["retrying"]["status"] == "completed"
    assert runs["retrying"]["output"] == "third time"
    [call] = runs["retrying"]["history"]
    assert call["attempts"] == 3
    assert [f["attempt"] for f in call["detail"]["failures"]] == [1, 2]
    assert effects.count("flaky") == 3

    # Child runs: the parent waited across the kill and got its child's output.
    assert runs["parent:kid"]["parent_run_id"] == "parent"
    assert runs["parent"]["status"] == "completed"
    assert runs["parent"]["output"] == {"kid": "now"}
    assert effects.count("kid-work") == 1
    assert effects.count("after-kid") == 1

    # Parallel steps: a committed before the kill and was replayed; b was mid-step and ran again.
    assert runs["fanout"]["output"] == ["a", "b"]
    assert effects.count("a") == 1
    assert effects.count("b-start") == 2
    assert effects.count("b-end") == 1

    # A multi-event wait took the signal sent while no process ran.
    assert runs["decide"]["output"] == ["approved", {"by": "ann"}]

    # Versions: the run that went past the change under the old code replays the old path
    # under the new code; a new run takes the new one.
    assert runs["versioned"]["output"] == "ship"
    assert runs["versioned-new"]["output"] == "ship-insured"
    assert [h["kind"] for h in runs["versioned"]["history"]] == ["step", "step", "event"]
    assert [h["kind"] for h in runs["versioned-new"]["history"]] == ["step", "patch", "step", "event"]
    assert effects.count("ship") == 1

    # max_concurrent=1: the second run waited in line before the kill and ran once after.
    assert runs["limited-1"]["output"] == "limited-1"
    assert runs["limited-2"]["output"] == "limited-2"
    assert effects.count("limited-1-start") == 2
    assert effects.count("limited-2-start") == 1
    after_kill = [e for e in effects[effects.index("limited-1-start") + 1 :] if e.startswith("limited-")]
    pairs = [after_kill[i : i + 2] for i in range(0, len(after_kill), 2)]
    assert sorted(pairs) == [
        ["limited-1-start", "limited-1-end"],
        ["limited-2-start", "limited-2-end"],
    ]  # one at a time

    # The deadline passed while the process was down.
    assert runs["deadlined"]["status"] == "failed"
    assert runs["deadlined"]["error"]["type"] == "DeadlineExceeded"
