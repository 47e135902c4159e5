"""Prometheus metrics and a health check of a worker (``tarry worker --metrics ADDR``).

Needs the ``metrics`` extra (``pip install 'tarry[metrics]'``, prometheus-client); nothing
else in the engine imports this module, so a worker without ``--metrics`` never loads it.

:func:`serve_metrics` listens on ``ADDR`` (``host:port``) in a thread of its own and
answers two paths:

- ``/metrics``: the metrics below, from a :class:`~prometheus_client.CollectorRegistry`
  of this worker's own (not the process-wide default one, so several runtimes in one
  process, tests say, never clash);
- ``/healthz``: ``200`` and ``{"status": "serving", ...}`` while the worker serves and
  holds its lease; ``503`` otherwise (``standby``, ``starting``, ``draining``,
  ``lease_lost``, ``stopped``), with the same one-line JSON body.

Metrics (labels in brackets):

- ``tarry_runs_started_total`` [workflow]: new runs this worker started (triggered here or
  by a client, child runs, forks, scheduled runs).
- ``tarry_runs_ended_total`` [workflow, status]: runs it ended ``completed``, ``failed``
  or ``cancelled`` (a retried run ends once more).
- ``tarry_step_attempts_total``, ``tarry_step_failures_total`` [workflow, step]: step
  attempts it ran, and those that raised (retried or not); steps replayed from the
  journal are not counted. Past 100 step ids in one workflow, further ones count as
  ``step="_other"`` (ids that carry data must not make a series each).
- ``tarry_step_duration_seconds`` [workflow, step]: histogram of one attempt's time.
- ``tarry_timer_lateness_seconds``: histogram of how late a run woke from a sleep or a
  retry's backoff, after its due time (a worker that was down makes it large).
- ``tarry_commit_batch_size``, ``tarry_commit_seconds``: histograms of the writes in each
  committed transaction and the time it took (group commit; SQLite and PostgreSQL alike).
- ``tarry_runs_suspended``, ``tarry_runs_waiting``: gauges read from the database at each
  scrape: runs suspended (sleeping, waiting, between retries), and those of them waiting
  for an event or a child run. On PostgreSQL: the whole database's, not this worker's.
- ``tarry_runs_queued`` [workflow]: runs of this worker in line for a ``max_concurrent`` place.
- ``tarry_worker_lease_held``: 1 while this worker holds its lease (serving or draining).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - tested by hiding the package
    raise ImportError("tarry worker --metrics needs prometheus-client: pip install 'tarry[metrics]'") from exc

from .errors import InvalidArgument, WorkflowError
from .store.base import SharedStore

if TYPE_CHECKING:
    from prometheus_client import Metric

    from .runtime import Runtime
    from .worker import Worker

__all__ = ["Metrics", "MetricsServer", "parse_address", "serve_metrics"]

log = logging.getLogger("tarry.worker")

#: Step ids counted apart per workflow; later ones share ``step="_other"``.
MAX_STEPS_PER_WORKFLOW = 100
OTHER_STEP = "_other"

_STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)


class Metrics:
    """A worker's metrics in a registry of its own (see the module docstring).

    Implements :class:`tarry.actor.RunMetrics` (what runs report) and the stores'
    ``commit_hook``. :meth:`attach` plugs it into the runtime and its store.
    """

    def __init__(self, runtime: Runtime, worker: Worker | None = None) -> None:
        self.runtime = runtime
        self.worker = worker
        self.registry = CollectorRegistry()
        r = self.registry
        self._started = Counter("tarry_runs_started", "Runs this worker started.", ["workflow"], registry=r)
        self._ended = Counter("tarry_runs_ended", "Runs this worker ended.", ["workflow", "status"], registry=r)
        self._attempts = Counter(
            "tarry_step_attempts", "Step attempts run (replays not counted).", ["workflow", "step"], registry=r
        )
        self._failures = Counter(
            "tarry_step_failures", "Step attempts that raised (retried or not).", ["workflow", "step"], registry=r
        )
        self._duration = Histogram(
            "tarry_step_duration_seconds", "Time of one step attempt.", ["workflow", "step"], registry=r,
            buckets=_STEP_BUCKETS,
        )  # fmt: skip
        self._lateness = Histogram(
            "tarry_timer_lateness_seconds", "How late a run woke from a sleep or a retry backoff.", registry=r,
            buckets=_LATENESS_BUCKETS,
        )  # fmt: skip
        self._batch = Histogram(
            "tarry_commit_batch_size", "Writes per committed transaction.", registry=r, buckets=_BATCH_BUCKETS
        )
        self._commit = Histogram(
            "tarry_commit_seconds", "Time to commit one transaction.", registry=r, buckets=_COMMIT_BUCKETS
        )
        self._steps: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._step_ids: dict[str, int] = {}
        r.register(_StateCollector(self))

    def attach(self) -> Callable[[], None]:
        """Make the runtime's runs and its store's commits report here; returns the undo."""
        store = self.runtime.store
        self.runtime.metrics = self
        store.commit_hook = self.committed

        def detach() -> None:
            self.runtime.metrics = None
            store.commit_hook = None

        return detach

    # -- RunMetrics --------------------------------------------------------------------------

    def run_started(self, workflow_id: str) -> None:
        self._started.labels(workflow_id).inc()

    def run_ended(self, workflow_id: str, status: str) -> None:
        self._ended.labels(workflow_id, status).inc()

    def step_attempted(self, workflow_id: str, step_id: str, seconds: float, failed: bool) -> None:
        series = self._steps.get((workflow_id, step_id))
        if series is None:
            series = self._series(workflow_id, step_id)
        attempts, failures, duration = series
        attempts.inc()
        if failed:
            failures.inc()
        duration.observe(max(seconds, 0.0))

    def _series(self, workflow_id: str, step_id: str) -> tuple[Any, Any, Any]:
        seen = self._step_ids.get(workflow_id, 0)
        if seen >= MAX_STEPS_PER_WORKFLOW:
            key = (workflow_id, OTHER_STEP)
            found = self._steps.get(key)
            if found is not None:
                return found
            step_id = OTHER_STEP
        else:
            self._step_ids[workflow_id] = seen + 1
            key = (workflow_id, step_id)
        series = (
            self._attempts.labels(workflow_id, step_id),
            self._failures.labels(workflow_id, step_id),
            self._duration.labels(workflow_id, step_id),
        )
        self._steps[key] = series
        return series

    def woke(self, late: float) -> None:
        self._lateness.observe(max(late, 0.0))

    # -- the stores' commit_hook (any thread) -----------------------------------------------

    def committed(self, writes: int, seconds: float) -> None:
        self._batch.observe(writes)
        self._commit.observe(seconds)

    # -- health -------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the worker serves and holds its lease, and what ``/healthz`` says."""
        worker = self.worker
        if worker is None:
            return False, {"status": "no worker"}
        status = "lease_lost" if worker.lease_lost else worker.state
        body = {"status": status, "lease": worker.holds_lease, "owner": worker.owner, "database": worker.store.url}
        return status == "serving" and worker.holds_lease, body


class _StateCollector(Collector):
    """The gauges, read when scraped (from the server's thread)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        worker, runtime = self.metrics.worker, self.metrics.runtime
        held = GaugeMetricFamily("tarry_worker_lease_held", "1 while this worker holds its lease.")
        held.add_metric([], 1.0 if worker is not None and worker.holds_lease else 0.0)
        yield held
        queued = GaugeMetricFamily(
            "tarry_runs_queued", "Runs of this worker waiting for a max_concurrent place.", labels=["workflow"]
        )
        for workflow_id, waiting in runtime.queued().items():  # read across threads: a snapshot
            queued.add_metric([workflow_id], waiting)
        yield queued
        yield from self._counts(worker)

    def _counts(self, worker: Worker | None) -> Iterator[Metric]:
        store = self.metrics.runtime.store
        if worker is None or worker.state in ("idle", "stopped") or not isinstance(store, SharedStore):
            return  # the database is not open: no gauge rather than a wrong one
        try:
            suspended = store.count_runs(["suspended"], None)
            waiting = store.count_runs(["suspended"], None, waiting="event")
        except WorkflowError:
            return
        yield GaugeMetricFamily("tarry_runs_suspended", "Suspended runs in the database.", value=suspended)
        yield GaugeMetricFamily(
            "tarry_runs_waiting", "Suspended runs waiting for an event or a child run.", value=waiting
        )


# -- the server ---------------------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6; port 0: any free one) as ``(host, port)``.

    Raises:
        InvalidArgument: not ``host:port`` with a port from 0 to 65535.
    """
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"--metrics takes HOST:PORT (e.g. 127.0.0.1:9464), not {address!r}", field="metrics")
    return host, int(port)


class _Quiet(WSGIRequestHandler):
    timeout = 5  # a client that connects and sends nothing does not hold the server up

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not worth a log line


class _Server(WSGIServer):
    """One request at a time, on the server's one thread: a scrape is quick, and the
    gauges' reads then use one database connection (a thread each would open one each)."""


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """The HTTP server of :func:`serve_metrics`; :meth:`close` stops it and detaches."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        scrape = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok, body = metrics.health()
                data = orjson.dumps(body) + b"\n"
                start_response(
                    "200 OK" if ok else "503 Service Unavailable",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
                )
                return [data]
            return scrape(environ, start_response)  # type: ignore[no-any-return]

        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = make_server(host, port, app, server_class=server_class, handler_class=_Quiet)
        except OSError as exc:
            raise InvalidArgument(
                f"--metrics cannot listen on {host}:{port}: {exc.strerror or exc}", field="metrics"
            ) from None
        self.port: int = self._server.server_port
        self._detach = metrics.attach()
        self._thread = threading.Thread(target=self._server.serve_forever, name="tarry-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._detach()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_metrics(address: str, worker: Worker) -> MetricsServer:
    """Serve ``worker``'s metrics and health on ``address`` (``host:port``) until closed.

    Raises:
        InvalidArgument: a bad address, or one this process cannot listen on.
    """
    host, port = parse_address(address)
    server = MetricsServer(Metrics(worker.runtime, worker), host, port)
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "metrics on http://%s:%d/metrics, health on http://%s:%d/healthz", shown, server.port, shown, server.port,
        extra={"address": f"{shown}:{server.port}"},
    )  # fmt: skip
    return server
