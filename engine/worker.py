"""Worker: serve a Runtime on a database that clients share (``tarry worker``).

A worker's life:

1. **Stand by** until it holds its lease (:class:`tarry.lease.Lease`). On SQLite there is
   one lease per file: a second worker on the same file waits here, and says so. On
   PostgreSQL every worker has its own and serves at once.
2. **Serve**: publish its workflows (:mod:`tarry.registry`), enter the runtime (which
   recovers every unfinished run it owns), then feed it what clients commit and, on
   PostgreSQL, the runs it claims (:class:`tarry.changes.ChangeFeed`), renewing the lease
   every ``ttl / store.lease_renewals`` seconds (SQLite: ``ttl / 2.5``, once a second by
   default; PostgreSQL: ``ttl / 4``).
3. **Drain** when :meth:`Worker.stop` is called (``tarry worker`` does on SIGINT/SIGTERM):
   no new work is taken, steps in progress get ``grace`` seconds to finish and commit
   (:meth:`Runtime.drain`), then whatever still runs is interrupted where it stands (a sync
   step's thread is abandoned, never waited for) and left ``running`` for the next worker to
   resume from its journal: it is not cancelled. The log says what became of each run. The
   lease is released, so a standby takes over at once.

If the lease is lost (this process stalled past its expiry and a standby took over), the
worker stops driving runs at once: the store's fence already refuses its commits, and
:meth:`Worker.run` raises :class:`LeaseLost`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from datetime import timedelta
from typing import Any

import trio

from .changes import ChangeFeed
from .errors import DiskFull, InvalidArgument, LeaseLost, WorkflowError
from .journal import prune_filter
from .lease import Lease
from .registry import describe
from .runtime import Runtime, reraise
from .store.base import LeaseRow, SharedStore

__all__ = ["Worker", "run_until_signalled"]

log = logging.getLogger("tarry.worker")


class Worker:
    """Serves ``runtime`` as a worker of its database.

    Args:
        runtime: the runtime to serve; its store must be one processes share
            (:class:`SQLiteStore`, :class:`PostgresStore`).
        lease_ttl: seconds without a heartbeat after which a standby takes over (SQLite),
            or the other workers take this one's runs (PostgreSQL); default: the store's
            ``lease_ttl`` (2.5 s on SQLite, 2 s on PostgreSQL).
        grace: seconds steps in progress get to finish when stopping (see :meth:`stop`).
        poll_interval: seconds between checks for other processes' commits when no
            datagram arrives (the fallback of the wake socket).
        wake_socket: listen on a unix datagram socket for clients' nudges.
        retention: prune ended runs older than this (a ``timedelta`` or seconds) while
            serving, every ``prune_every`` seconds (``None``: keep everything).
        prune_every: seconds between two prunes, the first right after the start; default
            a tenth of ``retention``, between 1 s and an hour.

    Raises:
        InvalidArgument: the runtime's store is not shared (a MemoryStore), or a bad option.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        lease_ttl: float | None = None,
        grace: float = 10.0,
        poll_interval: float = 0.02,
        wake_socket: bool = True,
        retention: float | timedelta | None = None,
        prune_every: float | None = None,
    ) -> None:
        if not isinstance(runtime.store, SharedStore):
            raise InvalidArgument(
                f"a worker serves a database that clients share; this runtime's store is {runtime.store.name!r} "
                "(create_runtime(store=SQLiteStore(path)) or PostgresStore(url))"
            )
        if not grace >= 0:
            raise InvalidArgument(f"grace must be a number of seconds >= 0, not {grace!r}")
        self.runtime = runtime
        self.store: SharedStore = runtime.store
        self.lease = Lease(self.store, ttl=lease_ttl)
        self.grace = float(grace)
        self.retention = None if retention is None else prune_filter(retention, None)[0]
        if prune_every is None:
            prune_every = max(1.0, min(3600.0, (self.retention or 0.0) / 10))
        if not prune_every > 0:
            raise InvalidArgument(f"prune_every must be a number of seconds > 0, not {prune_every!r}")
        self.prune_every = float(prune_every)
        #: Runs pruned by the retention sweep since this worker started.
        self.pruned = 0
        self.feed = ChangeFeed(runtime, self.store, poll_interval=poll_interval, wake_socket=wake_socket)
        #: ``idle``, ``standby``, ``starting``, ``serving``, ``draining`` or ``stopped``.
        self.state = "idle"
        self._stop = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._drain_scope: trio.CancelScope | None = None
        self._lost: LeaseLost | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        #: How the last drain ended: ``True`` every run reached a durable point within the
        #: grace; ``False`` some were left mid-step (grace over, or cut short by
        #: ``stop(grace=0)``); ``None`` no drain (it never served).
        self.drained: bool | None = None

    @property
    def owner(self) -> str:
        """This worker's id in the lease: ``host:pid:tag``."""
        return self.lease.owner

    @property
    def lease_lost(self) -> bool:
        """True once another worker took this one's lease over."""
        return self._lost is not None

    @property
    def holds_lease(self) -> bool:
        """True while this worker holds its lease: from the start of serving until it is
        released after draining (or lost)."""
        return self.state in ("starting", "serving", "draining") and self._lost is None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, *, grace: float | None = None) -> None:
        """Ask the worker to stop (from the worker's trio thread): a standby leaves at once;
        a serving worker drains for ``grace`` seconds (default: the worker's ``grace``).
        Calling it again with ``grace=0`` cuts a drain short."""
        if grace is not None:
            self.grace = max(0.0, float(grace))
            if self.grace == 0 and self._drain_scope is not None:
                self._drain_scope.cancel()
        self._stop.set()
        if self.state in ("idle", "standby") and self._scope is not None:
            self._scope.cancel()

    def _lose(self, error: LeaseLost) -> None:
        if self._lost is None:
            self._lost = error
            log.error("%s", error.message, extra={"holder": error.holder})
        if self._scope is not None:
            self._scope.cancel()

    def _fence_broken(self) -> None:
        """Called by the store (any thread) when a commit found the lease taken over."""
        token = self._token
        if token is not None:
            token.run_sync_soon(self._lose, LeaseLost(self.store.url, self.owner, None))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stand by until this worker holds the lease, serve until :meth:`stop`, drain, and
        return. ``task_status.started()`` is called once it serves.

        Raises:
            LeaseLost: another worker took the database over; this one stopped driving
                runs at once (nothing of it commits any more).
            NotATarryDatabase, SchemaTooNew, StoreError: the database cannot be served.
        """
        self._token = trio.lowlevel.current_trio_token()
        await self.store.open()
        address = await trio.to_thread.run_sync(self.feed.open)
        info: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "wake": address,
            "started_at": time.time(),
            "workflows": sorted(self.runtime.workflows),
        }
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                self.state = "standby"
                previous = await self.lease.acquire(info)
                self.state = "starting"
                await self._serve(previous, task_status)
        except BaseExceptionGroup as group:  # one engine error from inside the nurseries: raise it as is
            only = _only_error(group)
            if only is group:
                raise
            reraise(only)
        finally:
            self._scope = None
            self.store.set_owner(None)
            if self.feed.watching:  # the watcher thread must end even when cancelled
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.feed.close)
            self.state = "stopped"
        if self._lost is not None:
            raise self._lost

    async def _serve(self, previous: LeaseRow | None, task_status: trio.TaskStatus[None]) -> None:
        self.store.set_owner(self.owner, self._fence_broken)
        path = self.store.url
        if previous is not None and previous.owner != self.owner and previous.expires_at > previous.heartbeat_at:
            late = time.time() - previous.expires_at
            log.info(
                "took over %s from worker %s, whose lease expired %.1fs ago",
                path,
                previous.owner,
                late,
                extra={"holder": previous.owner},
            )
        workflows = [describe(wf) for wf in self.runtime.workflows.values()]
        await trio.to_thread.run_sync(self.store.publish_workflows, workflows, self.owner, time.time())
        start_after = await trio.to_thread.run_sync(self.store.last_change)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat)
            async with self.runtime:  # recovery: every unfinished run is picked up again
                try:  # housekeeping: the rows stay for the next start if this fails
                    await trio.to_thread.run_sync(self.store.forget_changes, start_after)
                except DiskFull as exc:
                    log.warning("old change notices not deleted: %s", exc.message)
                await nursery.start(self.feed.run, start_after)
                counts = await self.store.count_by_status()
                self.state = "serving"
                log.info(
                    "serving %s as worker %s (workflows: %s; %d running, %d suspended)",
                    path,
                    self.owner,
                    ", ".join(sorted(self.runtime.workflows)) or "none",
                    counts.get("running", 0),
                    counts.get("suspended", 0),
                    extra={"state": "serving", "owner": self.owner},
                )
                task_status.started()
                if self.retention is not None:
                    nursery.start_soon(self._prune_forever, self.retention)
                await self._stop.wait()
                self.state = "draining"
                self.feed.stop()
                self.drained = False
                with trio.CancelScope() as drain:
                    self._drain_scope = drain
                    self.drained = await self.runtime.drain(self.grace)
                self._drain_scope = None
            # Stop watching before the lease goes: once it is free, a standby serves, and
            # this worker is stopped but for the release.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.feed.close)
            await self.lease.release()
            nursery.cancel_scope.cancel()
        log.info("stopped; the lease on %s is free", path, extra={"state": "stopped"})

    async def _prune_forever(self, retention: float) -> None:
        """The retention sweep: batches of ended runs, one transaction each, never more
        than one prune at a time; an error is logged and tried again next time."""
        while not self._stop.is_set():
            try:
                self.pruned += await self.runtime.prune(older_than=retention)
            except WorkflowError:
                log.exception("pruning ended runs failed; trying again in %.0fs", self.prune_every)
            await trio.sleep(self.prune_every)

    async def _heartbeat(self) -> None:
        try:
            await self.lease.keep()
        except LeaseLost as exc:
            self._lose(exc)


async def run_until_signalled(worker: Worker) -> int:
    """Run ``worker`` until SIGINT or SIGTERM; the first drains (``worker.grace``), a second
    one stops at once (what ``tarry worker`` does).

    Returns:
        The process's exit status: 0 when every run it was driving stopped at a durable
        point (a clean drain) or it never served; ``128 + signal number`` (130 for SIGINT,
        143 for SIGTERM) when it left runs mid-step, because the grace ran out or a second
        signal cut the drain short. Those runs stay ``running`` and the next worker
        resumes them (their interrupted steps run again).

    Raises:
        WorkflowError: from :meth:`Worker.run` (``LeaseLost``; a store error such as
            ``NotATarryDatabase``).
    """
    failed: WorkflowError | None = None
    last_signal = signal.SIGTERM
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal last_signal
                async for signum in signals:
                    last_signal = signal.Signals(signum)
                    name = last_signal.name
                    # "starting": recovery has already started runs, so they get the grace too.
                    if not worker.stopping and worker.state in ("starting", "serving"):
                        log.info(
                            "%s: draining (steps in progress get %.1fs); send it again to stop at once",
                            name,
                            worker.grace,
                            extra={"state": "draining"},
                        )
                        worker.stop()
                    elif not worker.stopping:
                        log.info("%s: stopping", name)
                        worker.stop(grace=0)
                    else:
                        log.info("%s again: stopping now, leaving the runs mid-step to the next worker", name)
                        worker.stop(grace=0)

            nursery.start_soon(watch)
            try:
                await worker.run()
            except WorkflowError as exc:  # raised outside the nursery, not as an ExceptionGroup
                failed = exc
            finally:
                nursery.cancel_scope.cancel()
    if failed is not None:
        raise failed
    return 0 if worker.drained is not False else 128 + int(last_signal)


def _only_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one WorkflowError in ``group`` (besides cancellations), else the group itself."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        elif not isinstance(exc, trio.Cancelled):
            leaves.append(exc)
    if len(leaves) == 1 and isinstance(leaves[0], WorkflowError):
        return leaves[0]
    return group
