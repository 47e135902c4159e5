"""Workflow: a durable function's id, payload schema, run function and defaults."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import InvalidArgument
from .limits import check_name
from .retry import Retry
from .schedules import Schedule
from .schema import PayloadSchema

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["MAX_TAGS", "Workflow", "check_tags", "workflow"]

#: How many tags a workflow may carry: a label set to filter runs by, not a data store.
MAX_TAGS = 16

P = TypeVar("P")
R = TypeVar("R")

RunFunction = Callable[["RunContext[Any]"], Awaitable[Any]]


class Workflow(Generic[P]):
    """A registered unit of durable work. Build one with :func:`workflow` (as a decorator,
    or called: ``workflow("id")(run)``); hand it to ``create_runtime(workflows=[...])``.

    Attributes:
        id: the stable name runs are stored under. Renaming it orphans existing runs.
        run: ``async def run(ctx) -> JSON``: the workflow's code.
        schema: validates the payload on trigger (and again on replay).
        retry: the default :class:`Retry` of its steps.
        deadline: seconds a run may take from its start (``None``: no limit); a run still
            going then fails with :class:`DeadlineExceeded`, even while it sleeps or waits.
        max_concurrent: how many of its runs may execute at once in one worker process
            (``None``: no limit). Further runs wait in line, first come first served,
            with ``pending: {"kind": "queued"}``; sleeping and waiting runs do not count.
        schedule: a :class:`Schedule` (from ``schedule=`` cron, ``tz=``, ``catch_up=``):
            a serving runtime triggers a run at each tick, with the payload
            ``{"scheduled_at": ISO time}`` (a payload schema must accept it).
        description: free text, shown by the CLI and the dashboard.
        tags: a small set of names (``("approval", "billing")``, sorted) that its runs carry
            from their creation: ``list_runs(tag=...)``, ``tarry runs --tag`` and the
            dashboard filter on them, without the workflow's code.
    """

    __slots__ = ("deadline", "description", "id", "max_concurrent", "retry", "run", "schedule", "schema", "tags")

    def __init__(
        self,
        id: str,
        run: RunFunction,
        *,
        payload: object | None = None,
        retry: Retry | int | None = None,
        description: str | None = None,
        deadline: float | timedelta | None = None,
        max_concurrent: int | None = None,
        schedule: str | None = None,
        tz: str = "UTC",
        catch_up: float | timedelta = 3600.0,
        tags: Iterable[str] | None = None,
    ) -> None:
        check_name("workflow id", id)
        if not inspect.iscoroutinefunction(run):
            raise InvalidArgument(
                f"workflow {id!r}: run must be an `async def` function taking ctx, not {run!r}", workflow_id=id
            )
        self.id = id
        self.run = run
        self.schema = PayloadSchema.from_user(payload)
        self.retry = Retry.coerce(retry)
        self.deadline = _seconds(id, "deadline", deadline)
        if max_concurrent is not None and (
            isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
        ):
            raise InvalidArgument(
                f"workflow {id!r}: max_concurrent must be an int >= 1 or None, not {max_concurrent!r}", workflow_id=id
            )
        self.max_concurrent = max_concurrent
        if schedule is not None and not isinstance(schedule, str):
            raise InvalidArgument(f"workflow {id!r}: schedule must be a cron string, not {schedule!r}", workflow_id=id)
        seconds = catch_up.total_seconds() if isinstance(catch_up, timedelta) else catch_up
        self.schedule = None if schedule is None else Schedule(schedule, tz, seconds)
        self.description = description if description is not None else inspect.getdoc(run)
        self.tags = check_tags(id, tags)

    def validate(self, payload: Any) -> Any:
        """The validated payload. Raises :class:`PayloadValidationError` naming the fields."""
        return self.schema.validate(payload, workflow_id=self.id)

    def __repr__(self) -> str:
        return f"<Workflow {self.id!r}>"


def check_tags(workflow_id: str, tags: Iterable[str] | None) -> tuple[str, ...]:
    """``tags`` as a sorted tuple without duplicates.

    Raises:
        InvalidArgument: not a list or set of strings (a lone string is refused: it would
            be its letters), a tag that is not a name (``limits.check_name``) or holds a
            comma (runs store them comma-separated), or more than :data:`MAX_TAGS`.
    """
    if tags is None:
        return ()
    if isinstance(tags, str | bytes) or not isinstance(tags, Iterable):
        raise InvalidArgument(
            f"workflow {workflow_id!r}: tags must be a list of names, not {tags!r}",
            field="tags",
            workflow_id=workflow_id,
        )
    found = set()
    for tag in tags:
        check_name("tag", tag, workflow_id=workflow_id)
        if "," in tag:
            raise InvalidArgument(
                f"workflow {workflow_id!r}: tag {tag!r} must not hold a comma", field="tag", workflow_id=workflow_id
            )
        found.add(tag)
    if len(found) > MAX_TAGS:
        raise InvalidArgument(
            f"workflow {workflow_id!r}: at most {MAX_TAGS} tags, not {len(found)}",
            field="tags",
            workflow_id=workflow_id,
        )
    return tuple(sorted(found))


def _seconds(workflow_id: str, name: str, value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(
            f"workflow {workflow_id!r}: {name} must be a timedelta or a number of seconds > 0, not {value!r}",
            workflow_id=workflow_id,
        )
    return float(seconds)


def workflow(
    id: str,
    *,
    payload: object | None = None,
    retry: Retry | int | None = None,
    description: str | None = None,
    deadline: float | timedelta | None = None,
    max_concurrent: int | None = None,
    schedule: str | None = None,
    tz: str = "UTC",
    catch_up: float | timedelta = 3600.0,
    tags: Iterable[str] | None = None,
) -> Callable[[RunFunction], Workflow[Any]]:
    """Decorate an ``async def run(ctx)`` as a workflow::

        @workflow("order-fulfilment", payload=Order)
        async def order(ctx):
            await ctx.step("charge", charge, ctx.payload.order_id)

    Raises:
        InvalidArgument: an empty id, a function that is not ``async def``, a payload
            schema that is none of pydantic model / msgspec type / dataclass / callable.
    """

    def decorate(run: RunFunction) -> Workflow[Any]:
        return Workflow(
            id,
            run,
            payload=payload,
            retry=retry,
            description=description,
            deadline=deadline,
            max_concurrent=max_concurrent,
            schedule=schedule,
            tz=tz,
            catch_up=catch_up,
            tags=tags,
        )

    return decorate
