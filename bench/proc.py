"""Helpers for the cases that talk to another process (W3 cross-process, W5): a child
``python -m bench.<module> ...`` with pipes, and reading its stdout line by line in trio.

Time across processes: ``time.perf_counter()`` is ``CLOCK_MONOTONIC`` on Linux, one clock
for every process of the machine, so a time taken in one process can be subtracted from a
time taken in another.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ROOT", "LineReader", "open_child"]


async def open_child(module: str, *argv: str) -> trio.Process:
    """Start ``python -m bench.<module> argv...`` with stdin and stdout piped."""
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", f"bench.{module}", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )


class LineReader:
    """Lines from a trio receive stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def readline(self) -> str:
        """The next line without its newline; raises EOFError at the end of the stream."""
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise EOFError("the child process closed its output")
            self._buffer += chunk
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode()
