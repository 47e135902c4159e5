"""Workflow: a durable function's id, payload schema, run function and defaults."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import InvalidArgument
from .retry import RetryPolicy
from .schema import PayloadSchema

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["Workflow", "define_workflow", "workflow"]

P = TypeVar("P")
R = TypeVar("R")

RunFunction = Callable[["RunContext[Any]"], Awaitable[Any]]


class Workflow(Generic[P]):
    """A registered unit of durable work. Build one with :func:`workflow` or
    :func:`define_workflow`; hand it to ``create_runtime(workflows=[...])``.

    Attributes:
        id: the stable name runs are stored under. Renaming it orphans existing runs.
        run: ``async def run(ctx) -> JSON``: the workflow's code.
        schema: validates the payload on trigger (and again on replay).
        retry: the default :class:`RetryPolicy` of its steps.
        description: free text, shown by the CLI and the dashboard.
    """

    __slots__ = ("description", "id", "retry", "run", "schema")

    def __init__(
        self,
        id: str,
        run: RunFunction,
        *,
        payload: object | None = None,
        retry: RetryPolicy | int | None = None,
        description: str | None = None,
    ) -> None:
        if not isinstance(id, str) or not id.strip():
            raise InvalidArgument(f"a workflow id must be a non-empty string, not {id!r}")
        if not inspect.iscoroutinefunction(run):
            raise InvalidArgument(
                f"workflow {id!r}: run must be an `async def` function taking ctx, not {run!r}", workflow_id=id
            )
        self.id = id
        self.run = run
        self.schema = PayloadSchema.from_user(payload)
        self.retry = RetryPolicy.coerce(retry)
        self.description = description if description is not None else inspect.getdoc(run)

    def validate(self, payload: Any) -> Any:
        """The validated payload. Raises :class:`PayloadValidationError` naming the fields."""
        return self.schema.validate(payload, workflow_id=self.id)

    def __repr__(self) -> str:
        return f"<Workflow {self.id!r}>"


def workflow(
    id: str, *, payload: object | None = None, retry: RetryPolicy | int | None = None, description: str | None = None
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
        return Workflow(id, run, payload=payload, retry=retry, description=description)

    return decorate


def define_workflow(
    *,
    id: str,
    run: RunFunction,
    payload: object | None = None,
    retry: RetryPolicy | int | None = None,
    description: str | None = None,
) -> Workflow[Any]:
    """The ``defineWorkflow({id, payload, run})`` of @visulima/workflow, with keywords."""
    return Workflow(id, run, payload=payload, retry=retry, description=description)
