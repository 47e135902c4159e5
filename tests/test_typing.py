"""What a user's type checker sees of the API: ``mypy --strict`` on good and bad uses.

One mypy run (a subprocess, its cache in tmp_path) over a small module; every line marked
``# E: code`` must get that error and no other line any error; ``# T: type`` marks a
``reveal_type`` that must show that type.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tarry

USAGES = """
from dataclasses import dataclass
from typing import Any

import tarry
from tarry import Retry, RunContext, RunNotFound, StepFailed, workflow


@dataclass
class Order:
    order_id: str
    amount: float


async def pay(order_id: str, amount: float) -> dict[str, str]:
    return {"paid": order_id}


def count(n: int) -> int:
    return n


@workflow("orders", payload=Order)
async def orders(ctx: RunContext[Order]) -> str:
    receipt = await ctx.step("pay", pay, ctx.payload.order_id, ctx.payload.amount)
    reveal_type(receipt)  # T: dict[str, str]
    n = await ctx.step("count", count, n=3)
    reveal_type(n)  # T: int
    again = await ctx.step("retried", pay, "a", 1.0, retry=Retry(max_attempts=3), timeout=5)
    reveal_type(again)  # T: dict[str, str]
    await ctx.step("bad", pay, 123, "not-a-float")  # E: call-overload
    await ctx.step("bad-kw", count, m=3)  # E: call-overload
    await ctx.step("too-few", pay, "a")  # E: call-overload
    print(ctx.payload.amout)  # E: attr-defined
    async with ctx.parallel() as p:
        p.step("p-good", count, 1)
        p.step("p-retried", count, 1, retry=2)
        p.step("p-bad", count, "one")  # E: call-overload
    return ctx.payload.order_id


@workflow("mismatch", payload=Order)  # E: arg-type
async def mismatch(ctx: RunContext[dict[str, Any]]) -> None:
    pass


@workflow("untyped-payload")
async def plain(ctx: RunContext[Any]) -> None:
    pass


reveal_type(orders)  # T: tarry.workflow.Workflow[usages.Order]
store = tarry.PostgresStore("postgresql://localhost/tarry")
reveal_type(store)  # T: tarry.store.postgres.PostgresStore
missing: str = RunNotFound("r").run_id
failed: StepFailed = StepFailed("r", "s", "ValueError", "boom", 1)
attempts: int = failed.attempts
step_id: str = tarry.UnawaitedCall("r", "s").step_id
"""


def test_mypy_checks_step_arguments_payloads_and_errors(tmp_path: Path) -> None:
    source = tmp_path / "usages.py"
    source.write_text(USAGES)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            "--no-pretty",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        # The package under test: the folder holding `tarry` (the editable install's link tree, or site-packages).
        env={**os.environ, "MYPYPATH": str(Path(tarry.__file__).parent.parent)},
        check=False,
    )
    lines = USAGES.splitlines()
    expected_errors = {(i + 1, m.group(1)) for i, line in enumerate(lines) if (m := re.search(r"# E: (\S+)", line))}
    expected_types = {(i + 1, m.group(1)) for i, line in enumerate(lines) if (m := re.search(r"# T: (.+)$", line))}
    errors, types = set(), set()
    for line in done.stdout.splitlines():
        if m := re.match(r"usages\.py:(\d+): error: .*\[([\w-]+)\]$", line):
            errors.add((int(m.group(1)), m.group(2)))
        elif m := re.match(r'usages\.py:(\d+): note: Revealed type is "(.+)"$', line):
            types.add((int(m.group(1)), m.group(2)))
    assert errors == expected_errors, done.stdout + done.stderr
    assert types == expected_types, done.stdout + done.stderr
