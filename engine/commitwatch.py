"""CommitWatch: how a Client waits for a run to move without reading it over and over.

One plain thread per Client, running only while someone waits, watches the database's
change counter (:meth:`SharedStore.data_version`: SQLite's ``PRAGMA data_version``, a few
microseconds and no I/O while nothing was committed; PostgreSQL's WAL position) every
``every`` seconds, and bumps :attr:`CommitWatch.generation` when it moved. Waiters read
their run, then sleep until the generation moves past what it was before that read: a
blocking waiter on a condition variable, an async one on its event loop, woken by a
callback. So however many callers wait (threads, asyncio or trio tasks), the database sees
one cheap check per interval, and each run is read again only after something committed.

A check that fails (the database busy or gone) counts as a change: the waiters' own reads
then raise the error to them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["CommitWatch"]


class CommitWatch:
    """Tells waiters when anything was committed to a database; see the module docstring.

    Args:
        version: the store's change counter (``SharedStore.data_version``); thread-safe.
        every: seconds between two checks while someone waits.
    """

    def __init__(self, version: Callable[[], int], every: float = 0.005) -> None:
        self._version = version
        self._every = every
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._users = 0
        self._wakers: dict[int, Callable[[], None]] = {}
        #: Moves (once or more) after each commit the thread noticed; compare, do not count.
        self.generation = 0

    @contextlib.contextmanager
    def waiting(self, waker: Callable[[], None] | None = None) -> Iterator[None]:
        """Keep the watching thread running while the block waits. ``waker`` is called
        (from that thread; it must be quick and thread-safe) each time the generation moves."""
        with self._changed:
            self._users += 1
            if waker is not None:
                self._wakers[id(waker)] = waker
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._watch, name="tarry-commit-watch", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._changed:
                self._users -= 1
                if waker is not None:
                    self._wakers.pop(id(waker), None)

    def wait_past(self, generation: int, timeout: float) -> None:
        """Block until :attr:`generation` is no longer ``generation`` (or the watch
        closed), at most ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.generation != generation or self._stop.is_set(), timeout)

    def close(self) -> None:
        """Stop the thread and wake every waiter. Idempotent."""
        with self._changed:
            self._stop.set()
            thread = self._thread
        self._bump()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _watch(self) -> None:
        seen: int | None = None
        # The first look counts as a change: a waiter that read its run before this thread
        # read the counter looks again, so no commit falls between the two.
        first = True
        while True:
            with self._changed:
                if self._stop.is_set() or self._users == 0:
                    self._thread = None
                    return
            try:
                version: int | None = self._version()
            except Exception:  # busy or closed: the waiters' own reads raise it to them
                version = None
            if first or version is None or version != seen:
                first = False
                seen = version
                self._bump()
            self._stop.wait(self._every)

    def _bump(self) -> None:
        with self._changed:
            self.generation += 1
            self._changed.notify_all()
            wakers = list(self._wakers.values())
        for wake in wakers:
            with contextlib.suppress(Exception):  # its event loop has ended: nobody to wake
                wake()
