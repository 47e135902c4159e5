"""Schedules: a workflow that a serving runtime triggers at each tick of a cron expression.

    @workflow("report", schedule="0 9 * * MON-FRI", tz="Europe/Berlin")
    async def report(ctx): ...          # ctx.payload == {"scheduled_at": "2026-12-07T08:00:00Z"}

Exactly once per tick: the run of a tick has the id ``"{workflow_id}@{tick in UTC}"``, so a
second trigger of the same tick (a restart, a standby that took over, a second worker on
PostgreSQL) finds the run instead of starting another. When a runtime starts serving, the
latest tick within ``catch_up`` seconds before now is triggered if its run does not exist (a
tick missed while no worker ran, once; older missed ticks are skipped, as Temporal's catch-up
window and DBOS's scheduler do); ``catch_up=0`` skips them all.

Ticks are waited for on trio's clock (moved by ``MockClock`` in tests); their times are wall
clock, like every wake time in tarry.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import trio
from cronsim import CronSim

from .durations import resolve_wake_at, validate_spec
from .errors import InvalidArgument, WorkflowError

if TYPE_CHECKING:
    from .runtime import Runtime
    from .workflow import Workflow

__all__ = ["Schedule", "tick_run_id"]

log = logging.getLogger("tarry.schedules")


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a workflow runs by itself: ``cron`` in time zone ``tz``; ``catch_up`` seconds
    of missed ticks are made up (the latest one only) when serving starts.

    Raises:
        InvalidCron: the expression or the time zone does not parse, or never fires.
        InvalidArgument: a negative ``catch_up``.
    """

    cron: str
    tz: str = "UTC"
    catch_up: float = 3600.0

    def __post_init__(self) -> None:
        validate_spec({"cron": self.cron, "tz": self.tz})
        if isinstance(self.catch_up, bool) or not isinstance(self.catch_up, int | float) or not self.catch_up >= 0:
            raise InvalidArgument(f"schedule catch_up must be a number of seconds >= 0, not {self.catch_up!r}")

    def next_after(self, when: datetime) -> datetime:
        """The first tick strictly after ``when`` (aware, UTC)."""
        return resolve_wake_at({"cron": self.cron, "tz": self.tz}, when)

    def latest_at_or_before(self, when: datetime) -> datetime | None:
        """The latest tick at or before ``when`` (aware, UTC), or ``None`` within 50 years."""
        zone = ZoneInfo(self.tz)
        # cronsim drops microseconds; one second later makes a tick exactly at ``when`` count.
        backwards = CronSim(self.cron, when.astimezone(zone).replace(microsecond=0) + _ONE_SECOND, reverse=True)
        try:
            tick = next(backwards).astimezone(UTC)
        except StopIteration:
            return None
        return tick if tick <= when else None

    def describe(self) -> dict[str, Any]:
        return {"cron": self.cron, "tz": self.tz, "catch_up": self.catch_up}


_ONE_SECOND = timedelta(seconds=1)


def tick_run_id(workflow_id: str, tick: datetime) -> str:
    """The run id of ``workflow_id``'s run for ``tick``: ``"report@2026-12-07T08:00:00Z"``."""
    return f"{workflow_id}@{tick.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


async def run_schedule(runtime: Runtime, workflow: Workflow[Any], schedule: Schedule) -> None:
    """Trigger ``workflow`` at each tick while ``runtime`` serves (its supervisor runs this).
    Never raises but for cancellation: a failed trigger is logged, and the next tick comes."""
    now = datetime.fromtimestamp(runtime.now(), UTC)
    async with trio.open_nursery() as nursery:
        last = schedule.latest_at_or_before(now)
        if last is not None and schedule.catch_up > 0 and (now - last).total_seconds() <= schedule.catch_up:
            nursery.start_soon(_fire, runtime, workflow, last)
        after = now
        while True:
            tick = schedule.next_after(after)
            wait = tick.timestamp() - runtime.now()
            if wait > 0:
                await trio.sleep(wait if math.isfinite(wait) else 3600)
                if runtime.now() < tick.timestamp():
                    continue  # woke early (a coarse clock): wait again for this tick
            nursery.start_soon(_fire, runtime, workflow, tick)
            after = tick


async def _fire(runtime: Runtime, workflow: Workflow[Any], tick: datetime) -> None:
    if runtime.draining:
        return  # the next runtime on the store makes it up (catch_up)
    run_id = tick_run_id(workflow.id, tick)
    scheduled_at = tick.astimezone(UTC).isoformat().replace("+00:00", "Z")
    try:
        result = await runtime.trigger(workflow, {"scheduled_at": scheduled_at}, run_id=run_id, by="tarry:schedule")
    except WorkflowError:
        log.exception("scheduled run %s of %s could not be started", run_id, workflow.id)
        return
    log.info("schedule of %s fired for %s: run %s %s", workflow.id, scheduled_at, run_id, result.status)
