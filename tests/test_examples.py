"""The examples (examples/, which the docs quote) run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from examples.order_fulfilment import order
from examples.publish_review import review
from tarry import PayloadValidationError, SQLiteStore, create_runtime

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


async def test_order_fulfilment_sleeps_an_hour_then_ships(mock_clock: Any, tmp_path: Path) -> None:
    runtime = create_runtime(workflows=[order], store=SQLiteStore(tmp_path / "t.db"))
    async with runtime:
        result = await runtime.trigger(order, {"order_id": "o_1"})
        assert result.status == "suspended"
        assert result.pending is not None
        assert result.pending["step"] == "settle"
        start = trio.current_time()
        info = await wait_for(
            lambda: _status(runtime, result.run_id, "completed"), "the order to ship", timeout=2 * 3600
        )
        assert trio.current_time() - start >= 3599
        assert info.output == {"shipped": True, "tracking": "TRK-o_1"}
        assert [h.step_id for h in info.history] == ["charge", "settle", "ship"]
        with pytest.raises(PayloadValidationError, match="order_id"):
            await runtime.trigger(order, {"id": "o_2"})
    await runtime.aclose()


async def _status(runtime: Any, run_id: str, status: str) -> Any:
    info = await runtime.get_run(run_id)
    return info if info.status == status else None


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (
            {"approved": True},
            {"published": True, "url": "https://example.invalid/a1", "decided_by": "ana@example.com"},
        ),
        (
            {"approved": False, "reason": "typos"},
            {"published": False, "reason": "typos", "decided_by": "ana@example.com"},
        ),
        (None, {"published": False, "reason": "nobody decided within two days"}),
    ],
)
async def test_publish_review(mock_clock: Any, tmp_path: Path, decision: Any, expected: Any) -> None:
    runtime = create_runtime(workflows=[review], store=SQLiteStore(tmp_path / "t.db"))
    result = await runtime.trigger(review, {"article": "a1"})
    assert result.pending is not None
    assert result.pending["event"] == "review-decision"
    if decision is not None:
        await runtime.signal(result.run_id, "review-decision", decision, by="ana@example.com")
    else:
        await trio.sleep(2 * 86400 + 1)
        await runtime.sweep()
    info = await runtime.get_run(result.run_id)
    assert info.status == "completed"
    assert info.output == expected
    if decision is not None:  # the approver is on the signal too, for tarry show
        assert [s.sent_by for s in info.signals] == ["ana@example.com"]
    await runtime.aclose()


@pytest.mark.subprocess
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "trigger(order):              suspended, pending sleep 'settle'" in done.stdout
    assert "completed -> {'shipped': True, 'tracking': 'TRK-o_1'}" in done.stdout
    assert "get_run(review):             completed -> {'published': True" in done.stdout
    assert "served order o_2:            {'shipped': True, 'tracking': 'TRK-o_2'}" in done.stdout
    assert (tmp_path / "tarry.db").exists()


@pytest.mark.subprocess
def test_the_durable_features_example_runs_as_written(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "durable_features.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, *entries = done.stdout.splitlines()
    assert "'status': 'approved', 'by': 'ann', 'charge': 'ch_o_1', 'reserved': ['res_a', 'res_b']" in first
    assert [line.split()[1:3] for line in entries] == [
        ["step", "charge"],
        ["patch", "patch:fraud-v2"],
        ["step", "fraud-v2"],
        ["step", "reserve-a"],
        ["step", "reserve-b"],
        ["child", "invoice"],
        ["event", "decision"],
    ]
    assert "attempts=3" in entries[0]  # the seeded gateway failed twice, then the retry went through
