"""Testing a workflow that waits two days, on virtual time (docs/testing.md).

The ``tarry_env`` fixture comes from tarry's pytest plugin; run with ``python -m pytest
examples/test_expense_approval.py``.
"""

from __future__ import annotations

import pytest

from tarry.testing import TarryEnv

from .expense_approval import expense_approval, paid


@pytest.fixture
def env(tarry_env: TarryEnv) -> TarryEnv:
    tarry_env.register(expense_approval)
    return tarry_env


async def test_times_out_after_two_days(env: TarryEnv) -> None:
    run_id = await env.trigger(expense_approval, {"employee": "ana", "amount": 120})
    assert (await env.get_run(run_id)).status == "suspended"

    await env.advance("47h")  # a minute early: still waiting
    assert (await env.get_run(run_id)).status == "suspended"

    await env.advance("1h")
    assert await env.result(run_id) == {"paid": False, "reason": "timed out", "policy": {"within_policy": True}}
    assert await env.outline(run_id) == [
        ("step", "check-policy", "completed"),
        ("step", "ask-manager", "completed"),
        ("event", "approval", "completed"),
        ("step", "escalate", "completed"),
    ]


async def test_approved_after_one_day(env: TarryEnv) -> None:
    run_id = await env.trigger(expense_approval, {"employee": "bo", "amount": 80})
    await env.advance("1d")
    await env.signal(run_id, "decision", {"approved": True}, by="manager@example.com")

    result = await env.result(run_id)
    assert result == {"paid": True, "receipt": "paid 80 to bo", "by": "manager@example.com"}
    assert "bo" in paid


async def test_survives_a_restart(tarry_sqlite_env: TarryEnv) -> None:
    env = tarry_sqlite_env
    env.register(expense_approval)
    run_id = await env.trigger(expense_approval, {"employee": "cy", "amount": 40})
    await env.advance("1d")
    await env.restart()  # a new runtime on the same file, as after a deploy
    await env.advance("1d")
    assert (await env.result(run_id))["reason"] == "timed out"
