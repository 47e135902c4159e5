"""Reloader: load a view's data in a worker thread, one load at a time.

A busy database changes many times a second. Each change asks the view to reload; while a
load is in flight, further requests fold into one more load after it, so there is never
more than one thread per view, and a slow read never piles up. A result whose parameters
no longer match the view (the filter changed while it was read) is dropped, never shown.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, Generic, TypeVar

from textual.dom import DOMNode

from tarry import WorkflowError

__all__ = ["Reloader"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Reloader(Generic[K, T]):
    """Loads for ``node``: ``fetch(key)`` in a thread, then ``apply(result)`` on the loop.

    Args:
        node: the screen or widget that owns the data (its app runs the worker).
        key: the view's current parameters, read on the event loop when a load starts and
            again when it ends.
        fetch: reads the data (blocking; runs in a worker thread).
        apply: shows it (on the event loop).

    Errors of ``fetch`` are shown as one notification (the same error is not repeated
    while it persists), titled with the ``WorkflowError`` code.
    """

    def __init__(
        self, node: DOMNode, *, key: Callable[[], K], fetch: Callable[[K], T], apply: Callable[[T], None]
    ) -> None:
        self.node = node
        self.key = key
        self.fetch = fetch
        self.apply = apply
        self.busy = False
        self.again = False
        self.last_error: str | None = None

    def request(self) -> None:
        """Load now, or right after the load in flight."""
        if self.busy:
            self.again = True
            return
        self.busy = True
        key = self.key()
        self.node.run_worker(partial(self._run, key), thread=True, group="reload", exit_on_error=False)

    def _run(self, key: K) -> None:
        app: Any = self.node.app
        try:
            result = self.fetch(key)
        except WorkflowError as exc:
            app.call_from_thread(self._failed, exc.code, exc.message)
        except Exception as exc:  # not tarry's: still a notification, not a crash
            app.call_from_thread(self._failed, type(exc).__name__, str(exc))
        else:
            app.call_from_thread(self._loaded, key, result)

    def _loaded(self, key: K, result: T) -> None:
        self.busy = False
        self.last_error = None
        if key == self.key():
            self.apply(result)
        else:
            self.again = True  # the view moved on while this was read
        self._next()

    def _failed(self, title: str, message: str) -> None:
        self.busy = False
        if message != self.last_error:
            self.node.app.notify(message, title=title, severity="error")  # what Widget.notify does
        self.last_error = message
        self._next()

    def _next(self) -> None:
        if self.again:
            self.again = False
            self.request()
