"""Seat: a plain (passive) runtime's hold on a database that processes share.

A passive runtime drives runs inline, in the calls of whoever uses it: ``trigger``,
``signal``, ``sweep``, ``resume``, ``retry``, ``cancel``. On a database that several
processes can open, two of them must never drive one run at once. On SQLite (an
*exclusive* store: one serving process per file, see :class:`tarry.store.base.SharedStore`)
a passive runtime therefore takes the file's one lease, the same a ``tarry worker`` holds,
for as long as one of its calls drives runs, renewing it as a worker does and fencing
every commit on it:

- two overlapping cron jobs that ``sweep()`` one file: the second finds the lease held and
  sweeps nothing (the first drives every due run);
- a ``signal()`` or ``trigger()`` beside a worker (or a sweep) that holds the file: stored
  and announced to that process, as :class:`tarry.Client` does, never driven here.

The lease is released when the last call that drives runs returns, so a worker standing by
takes over at once. A passive runtime on a store that no other process can open (memory)
needs no seat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .errors import LeaseLost
from .lease import Lease
from .store.base import SharedStore, Store

__all__ = ["Seat"]

log = logging.getLogger("tarry.runtime")


class Seat:
    """The lease a passive runtime holds on an exclusive shared store while it drives.

    Args:
        store: the runtime's store; a seat is only ever taken on an exclusive
            :class:`SharedStore`, and :meth:`hold` always succeeds on any other store.
    """

    def __init__(self, store: Store) -> None:
        self.shared = store if isinstance(store, SharedStore) and store.exclusive else None
        self.lease = Lease(self.shared, ttl=self.shared.lease_ttl) if self.shared is not None else None
        self._holders = 0

    @property
    def owner(self) -> str | None:
        """This runtime's id in the lease (``host:pid:tag``), if it takes one."""
        return None if self.lease is None else self.lease.owner

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[bool]:
        """Hold the seat for the block: ``True`` when this runtime may drive runs in it,
        ``False`` when another live process holds the database (the block then stores and
        announces instead of driving). Calls of one runtime that overlap share the seat.

        Raises:
            LeaseLost: the lease was lost while the block ran (this process stalled past its
                ``ttl`` and another took the database over); nothing more was committed.
        """
        shared, lease = self.shared, self.lease
        if shared is None or lease is None:
            yield True
            return
        if self._holders == 0:
            now = time.time()
            taken, row = await trio.to_thread.run_sync(
                shared.lease_acquire, lease.name, lease.owner, now, lease.ttl, {"role": "runtime"}
            )
            if not taken:
                assert row is not None
                log.debug("%s is served by %s: storing, not driving", shared.url, row.owner)
                yield False
                return
            lease.valid_until = now + lease.ttl
            shared.set_owner(lease.owner)
        self._holders += 1
        lost: list[LeaseLost] = []
        try:
            async with trio.open_nursery() as nursery:

                async def keep() -> None:
                    try:
                        await lease.keep()
                    except LeaseLost as exc:  # stop the block: its commits are refused anyway
                        lost.append(exc)
                        nursery.cancel_scope.cancel()

                nursery.start_soon(keep)
                try:
                    yield True
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The caller's own error, not a group of one (the heartbeat never raises).
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        else:
            if lost:
                raise lost[0]
        finally:
            self._holders -= 1
            if self._holders == 0:
                shared.set_owner(None)
                with trio.CancelScope(shield=True):  # released even when the call is cancelled
                    await lease.release()  # a no-op if another process took it over
