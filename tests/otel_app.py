"""A worker app for ``tarry worker tests.otel_app:runtime --otel``: it configures the global
tracer provider, as an application does, to append each finished span as one JSON line to
the file named by ``TARRY_TEST_SPANS``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from tarry import create_runtime

from .workflows_cli import approval


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [
            json.dumps(
                {
                    "name": s.name,
                    "trace_id": f"{s.context.trace_id:032x}",
                    "parent_id": None if s.parent is None else f"{s.parent.span_id:016x}",
                    "attributes": dict(s.attributes or {}),
                    "pid": os.getpid(),
                }
            )
            for s in spans
        ]
        with open(self.path, "a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["TARRY_TEST_SPANS"])))
trace.set_tracer_provider(provider)

runtime = create_runtime([approval])
