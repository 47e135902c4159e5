"""The workflow ``bench.takeover`` serves (``tarry --db DB worker bench.takeover_app``)."""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from tarry import workflow


def stamp(run_id: str) -> None:
    """``<run_id> <pid> <time.time()>`` into ``$TARRY_TAKEOVER_STAMPS``: who started the step, when."""
    fd = os.open(os.environ["TARRY_TAKEOVER_STAMPS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{run_id} {os.getpid()} {time.time():.6f}\n".encode())  # one O_APPEND write: atomic
    finally:
        os.close(fd)


async def hold(run_id: str, seconds: float) -> str:
    stamp(run_id)
    await trio.sleep(seconds)
    return "held"


@workflow("takeover-hold")
async def held(ctx: Any) -> str:
    """One long step: the run is mid-step when its worker is killed."""
    return await ctx.step("hold", hold, ctx.run_id, ctx.payload["seconds"])


WORKFLOWS = [held]
