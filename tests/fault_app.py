"""The workflow the disk-full test's worker serves: steps whose outputs fill a small disk,
each step appending a line to a side-effect log kept on another filesystem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tarry import workflow

STEPS = 8
OUTPUT_BYTES = 16 * 1024


def _effect(run_id: str, name: str) -> str:
    with open(Path(os.environ["FAULT_DIR"]) / "effects.log", "a") as log:
        log.write(f"{run_id} {name}\n")
    return name * (OUTPUT_BYTES // len(name))


@workflow("filler")
async def filler(ctx: Any) -> Any:
    sizes = []
    for i in range(STEPS):
        out = await ctx.step(f"s{i}", _effect, ctx.run_id, f"s{i}")
        sizes.append(len(out))
    return sum(sizes)


WORKFLOWS = [filler]
