"""A workflow whose first step blocks its thread: ``tarry worker tests.blocking_app``
(tests/test_bounded_stops.py).

``charge`` is a plain ``def`` step: it appends ``<run_id> charge-start`` to the file named by
``TARRY_TEST_EFFECTS``, blocks its thread (``time.sleep``) until the file ``payload["gate"]``
exists or ``payload["seconds"]`` have passed, then appends ``<run_id> charge-end``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tarry import create_runtime, workflow

from .workflows_cli import effect, record


def charge(run_id: str, seconds: float, gate: str) -> str:
    record(run_id, "charge-start")
    until = time.monotonic() + seconds
    while not os.path.exists(gate) and time.monotonic() < until:
        time.sleep(0.01)
    record(run_id, "charge-end")
    return "charged"


@workflow("blocking")
async def blocking(ctx: Any) -> Any:
    charged = await ctx.step("charge", charge, ctx.run_id, ctx.payload["seconds"], ctx.payload["gate"])
    await ctx.step("receipt", effect, ctx.run_id, "receipt")
    return charged


runtime = create_runtime([blocking])
