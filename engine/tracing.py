"""OpenTelemetry traces of runs and steps, when asked for (``pip install 'tarry[otel]'``).

- ``Runtime(tracing=True)`` (``tarry worker --otel``) traces with the global tracer
  provider; ``tracing=<a TracerProvider>`` with that one. Off by default: the engine then
  never imports opentelemetry, and a step pays one attribute check.
- Each activation of a run (an actor driving it, until it suspends and lets go or ends) is
  a span ``tarry.run <workflow id>``; each attempt of a step a child span ``tarry.step
  <step id>``; attributes ``tarry.run_id``, ``tarry.workflow_id``, ``tarry.step_id``,
  ``tarry.attempt``. A step's exception and a failed run's error are recorded on their
  spans (status ERROR).
- ``trigger`` (Runtime or Client) stores the W3C ``traceparent`` of the span current in the
  caller, if the caller's process uses OpenTelemetry, with the run: every activation of the
  run, in whichever process and after any restart, is a child of that span.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import InvalidArgument

__all__ = ["Tracer", "current_traceparent"]


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the caller's current span; ``None`` when there is none.

    Never imports opentelemetry: a process that has not imported its API has no span.
    """
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    return _traceparent(trace.get_current_span())


def _traceparent(span: Any) -> str | None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class Tracer:
    """Makes the spans of runs and steps (see the module docstring).

    Args:
        provider: a ``TracerProvider``; ``None``: OpenTelemetry's global one.

    Raises:
        InvalidArgument: opentelemetry-api is not installed.
    """

    def __init__(self, provider: Any = None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            raise InvalidArgument("tracing needs OpenTelemetry: pip install 'tarry[otel]'") from None
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self._tracer = trace.get_tracer("tarry", tracer_provider=provider)

    def start_run(self, run_id: str, workflow_id: str, attempt: int, traceparent: str | None) -> Any:
        """The span of one activation of a run, a child of ``traceparent``'s span if any."""
        parent = self._propagator.extract({"traceparent": traceparent}) if traceparent else None
        return self._tracer.start_span(
            f"tarry.run {workflow_id}",
            context=parent,
            attributes={"tarry.run_id": run_id, "tarry.workflow_id": workflow_id, "tarry.attempt": attempt},
        )

    def end_run(self, span: Any, status: str, error: str | None) -> None:
        """End a run's span; a run that ``failed`` marks it as an error with ``error``."""
        span.set_attribute("tarry.status", status)
        if status == "failed":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        span.end()

    @contextmanager
    def step(self, run_span: Any, run_id: str, workflow_id: str, step_id: str, attempt: int) -> Iterator[Any]:
        """The span of one attempt of a step; its exception, if any, is recorded on it."""
        context = self._trace.set_span_in_context(run_span)
        attributes: dict[str, Any] = {
            "tarry.run_id": run_id,
            "tarry.workflow_id": workflow_id,
            "tarry.step_id": step_id,
            "tarry.attempt": attempt,
        }
        with self._tracer.start_as_current_span(
            f"tarry.step {step_id}", context=context, attributes=attributes
        ) as span:
            yield span

    def traceparent(self, span: Any) -> str | None:
        """``span``'s W3C ``traceparent`` (a child run joins its parent's activation)."""
        return _traceparent(span)
