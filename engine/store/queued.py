"""A write queued for a committer, and how the task waiting for it is woken.

Shared by the stores whose committers batch writes from many trio tasks (and plain
threads) into one transaction: the caller parks on the op, the committer fills in
``result`` or ``error`` and wakes every waiter of a batch with one hop per trio run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["Op", "deliver", "wake_all"]

log = logging.getLogger("tarry.store")


class Op:
    """One queued write: the function to run on the write connection and its outcome.

    ``waiter`` is the trio task parked until the op is done (``None`` once it gave up,
    cancelled), or a ``threading.Event`` for a plain-thread caller (``token`` is ``None``).
    """

    __slots__ = ("args", "error", "fn", "result", "token", "waiter")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], token: Any, waiter: Any) -> None:
        self.fn = fn
        self.args = args
        self.token = token
        self.waiter = waiter
        self.result: Any = None
        self.error: BaseException | None = None


def wake_all(ops: list[Op]) -> None:
    """Wake the trio tasks waiting for ``ops`` (on their trio thread)."""
    for op in ops:
        waiter, op.waiter, op.args = op.waiter, None, ()
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)
        elif op.error is not None:  # a write-behind (or a cancelled waiter's write) failed
            log.warning("a write nobody waited for failed: %s", op.error)


def deliver(batch: list[Op]) -> None:
    """From a committer's thread: wake the waiters, one thread hop per trio run."""
    by_token: dict[Any, list[Op]] = {}
    for op in batch:
        if op.token is None:
            op.waiter.set()  # a plain thread waits on a threading.Event
        else:
            by_token.setdefault(op.token, []).append(op)
    for token, ops in by_token.items():
        # A trio run that finished in the meantime has nobody waiting any more.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(wake_all, ops)
