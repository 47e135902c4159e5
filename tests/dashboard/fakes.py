"""A client with frozen runs and a frozen "now", for snapshot tests that must not move."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tarry import (
    AuditInfo,
    HistoryEntry,
    PayloadValidationError,
    RunError,
    RunFinished,
    RunInfo,
    RunNotFound,
    RunNotRetryable,
    RunResult,
    SignalInfo,
)

NOW = datetime(2026, 11, 26, 14, 0, 0, tzinfo=UTC)


def _t(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


TRACEBACK = """Traceback (most recent call last):
  File "shop/workflows.py", line 41, in charge
    raise PaymentDeclined(order_id)
shop.errors.PaymentDeclined: card declined for order o-1003"""


def _runs() -> list[RunInfo]:
    review_wait = {"kind": "event", "step": "review", "event": "review-decision", "deadline": NOW + timedelta(hours=47)}
    sleep = {"kind": "sleep", "step": "settle", "wake_at": NOW + timedelta(minutes=5)}
    error = RunError("PaymentDeclined", "card declined for order o-1003", TRACEBACK, None, "charge")

    def entry(
        seq: int, step: str, kind: str, status: str, start: float, took: float | None, output: Any = None, **kw: Any
    ) -> HistoryEntry:
        started = _t(start)
        return HistoryEntry(
            seq,
            step,
            kind,
            status,
            output,
            kw.get("error"),
            kw.get("attempts", 1),
            started,
            None if took is None else started + timedelta(seconds=took),
            kw.get("detail", {}),
        )

    return [
        RunInfo(
            "run-0001",
            "order-fulfilment",
            "completed",
            {"order_id": "o-1001", "amount": 3},
            {"charged": "o-1001", "shipped": "o-1001"},
            None,
            None,
            [
                entry(0, "charge", "step", "completed", 90, 0.21, {"charged": "o-1001"}),
                entry(1, "settle", "sleep", "completed", 89.9, 3600, detail={"wake_at": _t(30)}),
                entry(2, "ship", "step", "completed", 29.9, 1.5, {"shipped": "o-1001"}, attempts=2),
            ],
            [],
            _t(90),
            _t(29.8),
            1,
            None,
        ),
        RunInfo(
            "run-0002",
            "publish",
            "suspended",
            {"post": "hello world"},
            None,
            None,
            review_wait,
            [
                entry(0, "draft", "step", "completed", 60, 0.05, "draft-17"),
                entry(
                    1,
                    "review",
                    "event",
                    "waiting",
                    59.9,
                    None,
                    detail={"event": "review-decision", "deadline": review_wait["deadline"]},
                ),
            ],
            [],
            _t(60),
            _t(59.9),
            1,
            None,
        ),
        RunInfo(
            "run-0003",
            "order-fulfilment",
            "suspended",
            {"order_id": "o-1002", "amount": 1},
            None,
            None,
            sleep,
            [
                entry(0, "charge", "step", "completed", 55, 0.3, {"charged": "o-1002"}),
                entry(1, "settle", "sleep", "waiting", 54.9, None, detail={"wake_at": sleep["wake_at"]}),
            ],
            [],
            _t(55),
            _t(54.9),
            1,
            None,
        ),
        RunInfo(
            "run-0004",
            "order-fulfilment",
            "failed",
            {"order_id": "o-1003", "amount": 9},
            None,
            error,
            None,
            [entry(0, "charge", "step", "failed", 20, 12.0, error=error, attempts=3)],
            [],
            _t(20),
            _t(19.8),
            1,
            None,
        ),
        RunInfo(
            "run-0005",
            "publish",
            "completed",
            {"post": "second"},
            {"decision": {"approved": True}},
            None,
            None,
            [
                entry(0, "draft", "step", "completed", 15, 0.04, "draft-18"),
                entry(
                    1,
                    "review",
                    "event",
                    "completed",
                    14.9,
                    300,
                    {"approved": True},
                    detail={"event": "review-decision", "signal_id": 1, "sent_by": "ana@example.com"},
                ),
                entry(2, "publish", "step", "completed", 9.9, 0.02, "published"),
            ],
            [SignalInfo(1, "review-decision", {"approved": True}, _t(9.95), _t(9.9), "review", "ana@example.com")],
            _t(15),
            _t(9.9),
            1,
            None,
            audit=[AuditInfo("trigger", "web@shop", _t(15), {})],
        ),
        RunInfo(
            "run-0006",
            "nightly-report",
            "running",
            {"day": "2026-11-25"},
            None,
            None,
            None,
            [entry(0, "collect", "step", "completed", 2, 40.0, {"rows": 1204})],
            [],
            _t(2),
            _t(1.3),
            1,
            None,
        ),
        RunInfo(
            "run-0007",
            "publish",
            "cancelled",
            {"post": "draft"},
            None,
            None,
            None,
            [entry(0, "draft", "step", "completed", 1, 0.05, "draft-19")],
            [],
            _t(1),
            _t(0.5),
            1,
            "cancelled by request",
        ),
    ]


class FakeClient:
    """Frozen data shaped like ``tarry.Client``'s answers; verbs change it in memory."""

    path = "/srv/tarry/shop.db"

    def __init__(self) -> None:
        self.runs = {r.run_id: r for r in _runs()}
        self.version = 1
        self.sent: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        #: Workers holding a current lease (0: nothing serves the database).
        self.workers = 1

    def _bump(self) -> None:
        self.version += 1

    def data_version(self) -> int:
        return self.version

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs.values():
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts

    def list_runs(
        self,
        *,
        status: Any = None,
        workflow_id: Any = None,
        limit: int = 100,
        offset: int = 0,
        search: Any = None,
        waiting: Any = None,
        oldest_first: bool = False,
    ) -> list[RunResult]:
        runs = self._matching(status, search, waiting)
        if oldest_first:
            runs.sort(key=lambda r: (r.updated_at, r.run_id))
        return [r.result for r in runs[offset : offset + limit]]

    def list_runs_with_payload(self, **filters: Any) -> list[tuple[RunResult, Any]]:
        return [(r, self.runs[r.run_id].payload) for r in self.list_runs(**filters)]

    def workers_alive(self) -> int:
        return self.workers

    def count(self, *, status: Any = None, workflow_id: Any = None, search: Any = None, waiting: Any = None) -> int:
        return len(self._matching(status, search, waiting))

    def _matching(self, status: Any, search: Any, waiting: Any) -> list[RunInfo]:
        runs = sorted(self.runs.values(), key=lambda r: r.created_at, reverse=True)
        if status:
            runs = [r for r in runs if r.status == status]
        if waiting:
            runs = [r for r in runs if r.status == "suspended" and (r.pending or {}).get("kind") == waiting]
        if search:
            runs = [r for r in runs if search in r.run_id or search in r.workflow_id or search in str(r.payload)]
        return runs

    def get_run(self, run_id: str) -> RunInfo:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    def signal(self, run_id: str, event: str, payload: Any = None) -> None:
        run = self.get_run(run_id)
        if run.status in ("completed", "failed", "cancelled"):
            raise RunFinished(run_id, run.status, "signal")
        self.sent.append((run_id, event, payload))
        self._bump()

    def cancel(self, run_id: str, *, reason: str | None = None) -> RunResult:
        run = self.get_run(run_id)
        if run.status in ("completed", "failed", "cancelled"):
            raise RunFinished(run_id, run.status, "cancel")
        self.runs[run_id] = replace(
            run, status="cancelled", pending=None, cancel_reason=reason or "cancelled by request"
        )
        self._bump()
        return self.runs[run_id].result

    def retry(self, run_id: str) -> RunResult:
        run = self.get_run(run_id)
        if run.status != "failed":
            raise RunNotRetryable(run_id, run.status)
        self.runs[run_id] = replace(run, status="running", error=None)
        self._bump()
        return self.runs[run_id].result

    def trigger(self, workflow: str, payload: Any = None, *, run_id: str | None = None) -> RunResult:
        missing = [f for f in ("order_id", "amount") if workflow == "order-fulfilment" and f not in (payload or {})]
        if missing:
            raise PayloadValidationError(workflow, [{"field": f, "message": "field required"} for f in missing])
        raise NotImplementedError

    def workflows(self) -> list[dict[str, Any]]:
        return [
            {
                "id": "order-fulfilment",
                "description": "Charge, wait for settlement, ship.",
                "schema": {"order_id": "str", "amount": "int"},
            },
            {"id": "publish", "description": "Draft, wait for a review decision, publish.", "schema": None},
        ]

    def engine_info(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size_bytes": 3 * 1024 * 1024 + 12345,
            "schema_version": 2,
            "runs": self.count_by_status(),
            "pending_changes": 0,
            "worker": "build-01:4242:7f3a",
            "worker_alive": True,
            "worker_pid": 4242,
            "worker_host": "build-01",
            "worker_started_at": "2026-11-26T09:12:03+00:00",
            "heartbeat_at": "2026-11-26T13:59:59.200000+00:00",
            "heartbeat_age": 0.8,
            "lease_expires_at": "2026-11-26T14:00:03.200000+00:00",
        }

    def close(self) -> None:
        pass
