"""Lease: a worker's heartbeat in the database it serves.

On an exclusive store (SQLite) every worker competes for the one lease ``"worker"``: a
worker takes it when there is none, when it expired, or when it is its own, and renews it
every ``ttl / store.lease_renewals`` seconds (SQLite: 2.5 s renewed every second). A second
worker finds it held and stands by: it reads the lease (a read takes no write lock) at that
interval and right after the expiry it saw, and only then tries to take it. When the first
one dies (``kill -9`` included) its lease runs out and the standby takes over within ``ttl``
plus a few milliseconds. On a shared store (PostgreSQL: 2 s renewed every ``ttl / 4``) each
worker has a lease of its own, taken at once; when it runs out, the other workers take its
runs. A worker that stops cleanly expires its lease at once, so nobody waits for it.

Losing the lease (the owner stalled past ``ttl`` and another took over) is detected twice:
the heartbeat's renewal fails, and, before that, the store's fence
(:meth:`SharedStore.set_owner`) refuses to commit anything for an owner that no longer
holds it. Either way :class:`LeaseLost` is raised and the worker stops driving runs.

Times are wall-clock epoch seconds, compared between processes (and, on a shared server,
between machines: keep their clocks in sync, as NTP does, well within ``ttl``).

The store's calls are blocking (:class:`SharedStore`), so they run in trio worker threads.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

import trio

from .errors import DiskFull, InvalidArgument, LeaseLost, StoreBusy
from .store.base import LeaseRow, SharedStore

__all__ = ["Lease"]

log = logging.getLogger("tarry.worker")


class Lease:
    """A worker's lease on one database.

    Args:
        store: the database.
        ttl: seconds a lease lasts without a heartbeat (at least 0.5; default: the
            store's ``lease_ttl``); renewed every ``ttl / store.lease_renewals`` seconds.
        owner: this worker's id; defaults to ``host:pid:random``.
    """

    def __init__(self, store: SharedStore, *, ttl: float | None = None, owner: str | None = None) -> None:
        ttl = store.lease_ttl if ttl is None else ttl
        if not ttl >= 0.5:
            raise InvalidArgument(f"the lease ttl must be at least 0.5 seconds, not {ttl!r}")
        self.store = store
        self.ttl = float(ttl)
        self.interval = self.ttl / store.lease_renewals
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.name = store.lease_name(self.owner)
        self.valid_until = 0.0

    async def acquire(self, info: dict[str, Any]) -> LeaseRow | None:
        """Take the lease, standing by (and saying so, once) while another worker holds it.

        Returns the lease row this replaced (``None`` on a fresh database): a previous
        owner that did not release it died or stalled.
        """
        announced = False
        while True:
            # Standing by reads: only a lease seen free, expired or ours is worth a write.
            row = await trio.to_thread.run_sync(self._current)
            now = time.time()
            if row is None or row.owner == self.owner or row.expires_at <= now:
                taken, row = await trio.to_thread.run_sync(
                    self.store.lease_acquire, self.name, self.owner, now, self.ttl, info
                )
                if taken:
                    self.valid_until = now + self.ttl
                    return row
            assert row is not None
            if not announced:
                announced = True
                log.info(
                    "standing by: %s is served by worker %s (pid %s); taking over if its lease "
                    "(expires in %.1fs) is not renewed",
                    self.store.url,
                    row.owner,
                    row.info.get("pid"),
                    max(0.0, row.expires_at - now),
                    extra={"holder": row.owner, "state": "standby"},
                )
            await trio.sleep(min(self.interval, max(0.01, row.expires_at - now + 0.01)))

    async def keep(self) -> None:
        """Renew the lease every ``ttl / store.lease_renewals`` seconds, until cancelled.

        Raises:
            LeaseLost: another worker holds it now, or it could not be renewed (database
                locked) before it expired.
        """
        full = False
        while True:
            await trio.sleep(self.interval)
            now = time.time()
            try:
                renewed = await trio.to_thread.run_sync(self.store.lease_renew, self.name, self.owner, now, self.ttl)
            except StoreBusy as exc:
                if time.time() >= self.valid_until - self.interval:
                    raise LeaseLost(self.store.url, self.owner, None) from exc
                log.warning("lease heartbeat delayed: %s", exc.message)
                continue
            except DiskFull as exc:
                # Not a reason to stop: no other worker can write either, and every commit
                # of this one checks it still holds the lease (a standby that took over
                # once space returned fences it out with LeaseLost).
                if not full:
                    log.error("lease heartbeat failed, serving on: %s", exc.message)
                full = True
                continue
            if full:
                log.warning("lease heartbeat renewed: the disk has room again")
                full = False
            if not renewed:
                holder = await trio.to_thread.run_sync(self.holder)
                raise LeaseLost(self.store.url, self.owner, holder)
            self.valid_until = now + self.ttl

    async def release(self) -> None:
        """Expire the lease now, so that a standby takes over at once (if it is still ours).

        On a full disk the release cannot be written: the lease then runs out by itself
        within its ttl, and a standby takes over then."""
        try:
            await trio.to_thread.run_sync(self.store.lease_release, self.name, self.owner, time.time())
        except DiskFull as exc:
            log.warning("the lease could not be released, it expires within %.1fs: %s", self.ttl, exc.message)

    def holder(self) -> str | None:
        """Who holds this lease now (blocking)."""
        row = self._current()
        return None if row is None else row.owner

    def _current(self) -> LeaseRow | None:
        """This lease's row as committed now (blocking; a read)."""
        return next((row for row in self.store.leases() if row.name == self.name), None)
