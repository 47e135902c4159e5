"""An expense waits for a manager's approval, for two days at most.

Tested on virtual time in ``examples/test_expense_approval.py`` (see docs/testing.md): two
simulated days pass in a fraction of a second, with a ``def`` step that blocks its thread
and an ``async def`` step.
"""

from __future__ import annotations

import time
from typing import Any

import trio.lowlevel

from tarry import RunContext, workflow

paid: list[str] = []


def check_policy(amount: float) -> dict[str, Any]:
    """A blocking call (a rules service, a database): it runs in a worker thread."""
    time.sleep(0.05)
    return {"within_policy": amount <= 1000}


async def notify(who: str, text: str) -> str:
    await trio.lowlevel.checkpoint()  # an async client would await here
    return f"told {who}: {text}"


def pay(employee: str, amount: float) -> str:
    time.sleep(0.05)
    paid.append(employee)
    return f"paid {amount:g} to {employee}"


@workflow("expense-approval", description="Pay an expense once a manager approves it, within two days.")
async def expense_approval(ctx: RunContext[Any]) -> dict[str, Any]:
    employee, amount = ctx.payload["employee"], ctx.payload["amount"]
    policy = await ctx.step("check-policy", check_policy, amount)
    await ctx.step("ask-manager", notify, "manager", f"{employee} claims {amount:g}")
    decision = await ctx.wait_for_event("approval", "decision", timeout={"amount": 2, "unit": "days"})
    if decision is None:
        await ctx.step("escalate", notify, "finance", f"nobody approved {employee}'s claim in two days")
        return {"paid": False, "reason": "timed out", "policy": policy}
    if not decision.get("approved"):
        return {"paid": False, "reason": "rejected", "by": ctx.last_signal_sender}
    receipt = await ctx.step("pay", pay, employee, amount)
    return {"paid": True, "receipt": receipt, "by": ctx.last_signal_sender}
