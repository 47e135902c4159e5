"""Lease: one worker per database file, by a heartbeat lease in the file itself.

The row ``tarry_leases(name="worker")`` names the owner and when its lease expires. A worker
takes the lease when there is none, when it expired, or when it is its own; it renews it
every ``ttl / 4`` seconds. A second worker finds it held and stands by, trying again every
``ttl / 4`` seconds: when the first one dies (``kill -9`` included) its lease runs out and the
standby takes over within ``ttl`` plus one try. A worker that stops cleanly expires its lease
at once, so a standby takes over without waiting.

Losing the lease (the owner stalled past ``ttl`` and another took over) is detected twice:
the heartbeat's renewal fails, and, before that, the store's fence
(:meth:`SQLiteStore.set_fence`) refuses to commit anything for an owner that no longer holds
the lease. Either way :class:`LeaseLost` is raised and the worker stops driving runs.

Times are wall-clock epoch seconds, compared between processes on one machine.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

import trio

from .errors import InvalidArgument, LeaseLost, StoreBusy
from .store import crossproc
from .store.crossproc import LEASE_NAME, LeaseRow
from .store.sqlite import SQLiteStore

__all__ = ["Lease"]

log = logging.getLogger("tarry.worker")


class Lease:
    """The worker lease of one database.

    Args:
        store: the database.
        ttl: seconds a lease lasts without a heartbeat (at least 0.5).
        owner: this worker's id; defaults to ``host:pid:random``.
    """

    def __init__(self, store: SQLiteStore, *, ttl: float = 4.0, owner: str | None = None) -> None:
        if not ttl >= 0.5:
            raise InvalidArgument(f"the lease ttl must be at least 0.5 seconds, not {ttl!r}")
        self.store = store
        self.ttl = float(ttl)
        self.interval = self.ttl / 4
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.valid_until = 0.0

    async def acquire(self, info: dict[str, Any]) -> LeaseRow | None:
        """Take the lease, standing by (and saying so, once) while another worker holds it.

        Returns the lease row this replaced (``None`` on a fresh database): a previous
        owner that did not release it died or stalled.
        """
        announced = False
        while True:
            now = time.time()
            taken, row = await self.store.submit(crossproc.lease_acquire, LEASE_NAME, self.owner, now, self.ttl, info)
            if taken:
                self.valid_until = now + self.ttl
                return row  # type: ignore[no-any-return]
            assert row is not None
            if not announced:
                announced = True
                log.info(
                    "standing by: %s is served by worker %s (pid %s); taking over if its lease "
                    "(expires in %.1fs) is not renewed",
                    self.store.path,
                    row.owner,
                    row.info.get("pid"),
                    max(0.0, row.expires_at - now),
                    extra={"holder": row.owner, "state": "standby"},
                )
            await trio.sleep(min(self.interval, max(0.01, row.expires_at - now + 0.01)))

    async def keep(self) -> None:
        """Renew the lease every ``ttl / 4`` seconds, until cancelled.

        Raises:
            LeaseLost: another worker holds it now, or it could not be renewed (database
                locked) before it expired.
        """
        while True:
            await trio.sleep(self.interval)
            now = time.time()
            try:
                renewed = await self.store.submit(crossproc.lease_renew, LEASE_NAME, self.owner, now, self.ttl)
            except StoreBusy as exc:
                if time.time() >= self.valid_until - self.interval:
                    raise LeaseLost(str(self.store.path), self.owner, None) from exc
                log.warning("lease heartbeat delayed: %s", exc.message)
                continue
            if not renewed:
                holder = await self.store.read(crossproc.lease_get)
                raise LeaseLost(str(self.store.path), self.owner, holder.owner if holder is not None else None)
            self.valid_until = now + self.ttl

    async def release(self) -> None:
        """Expire the lease now, so that a standby takes over at once (if it is still ours)."""
        await self.store.submit(crossproc.lease_release, LEASE_NAME, self.owner, time.time())
