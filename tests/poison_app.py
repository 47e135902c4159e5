"""Workflows whose steps kill the process running them: ``tarry worker tests.poison_app``.

``poison``'s second step SIGKILLs its process every time, until ``$POISON_DIR/fixed``
exists (the fix being deployed). Each of ``stumbling``'s steps SIGKILLs its process the
first time it runs and returns the second time: every recovery gets one step further.
Each step appends ``<run_id> <step>`` to ``$POISON_DIR/effects.log`` before it returns.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tarry import workflow


def _dir() -> Path:
    return Path(os.environ["POISON_DIR"])


def _effect(run_id: str, step: str) -> None:
    with open(_dir() / "effects.log", "a") as log:
        log.write(f"{run_id} {step}\n")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@workflow("poison")
async def poison(ctx) -> str:  # type: ignore[no-untyped-def]
    async def prepare() -> str:
        _effect(ctx.run_id, "prepare")
        return "prepared"

    async def explode() -> str:
        if not (_dir() / "fixed").exists():
            _die()
        _effect(ctx.run_id, "explode")
        return "fixed"

    await ctx.step("prepare", prepare)
    return await ctx.step("explode", explode)


@workflow("stumbling")
async def stumbling(ctx) -> list[str]:  # type: ignore[no-untyped-def]
    def stumble(name: str):  # type: ignore[no-untyped-def]
        async def run() -> str:
            marker = _dir() / f"{ctx.run_id}.{name}"
            if not marker.exists():
                marker.touch()
                _die()
            _effect(ctx.run_id, name)
            return name

        return run

    return [await ctx.step(name, stumble(name)) for name in ("a", "b", "c", "d")]


@workflow("healthy")
async def healthy(ctx) -> str:  # type: ignore[no-untyped-def]
    async def work() -> str:
        _effect(ctx.run_id, "work")
        return "ok"

    return await ctx.step("work", work)


WORKFLOWS = [poison, stumbling, healthy]
