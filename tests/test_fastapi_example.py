"""examples/fastapi_approval.py against a real uvicorn process: an expense approval
triggered, decided and read over HTTP, with the worker hosted in the app's lifespan."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tarry import Client

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client, Path]]:
    db, log = tmp_path / "expenses.db", tmp_path / "uvicorn.log"
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_approval:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, "TARRY_DB": str(db)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 30
        while True:  # uvicorn listens once the lifespan's startup (the worker serving) is done
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "uvicorn did not start: " + log.read_text()
            try:
                http.get("/expenses/none")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield proc, http, db
    finally:
        http.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)


def until_ended(http: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (body := http.get(f"/expenses/{run_id}").json())["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, body
        time.sleep(0.02)
    return body  # type: ignore[no-any-return]


@pytest.mark.subprocess
def test_an_expense_is_submitted_approved_and_paid_over_http(server: Any) -> None:
    proc, http, db = server
    submitted = http.post("/expenses", json={"submitter": "ada", "amount": 120.5, "description": "train"})
    assert submitted.status_code == 201, submitted.text
    run_id = submitted.json()["run_id"]
    assert submitted.json()["status"] == "suspended"  # notified the approvers; waits for a decision
    assert http.get(f"/expenses/{run_id}").json()["status"] == "suspended"

    decided = http.post(f"/expenses/{run_id}/decision", json={"approved": True, "by": "grace"})
    assert (decided.status_code, decided.json()["sent"]) == (202, True)
    body = until_ended(http, run_id)
    assert body["status"] == "completed", body
    assert body["output"] == {
        "approved": True,
        "by": "grace",
        "paid": 120.5,
        "to": "ada",
        "reference": f"PAY-{run_id}",
    }

    rejected = http.post("/expenses", json={"submitter": "bob", "amount": 9000, "description": "yacht"}).json()
    http.post(f"/expenses/{rejected['run_id']}/decision", json={"approved": False, "by": "grace", "note": "no"})
    assert until_ended(http, rejected["run_id"])["output"] == {"approved": False, "by": "grace", "note": "no"}

    # A retried POST delivers once; tarry's typed errors arrive as HTTP statuses.
    retried = http.post(f"/expenses/{run_id}/decision", json={"approved": True, "by": "grace"})
    assert (retried.status_code, retried.json()["sent"]) == (202, False)
    overruled = http.post(f"/expenses/{run_id}/decision", json={"approved": False, "by": "eve"})
    assert (overruled.status_code, overruled.json()["code"]) == (409, "idempotency_conflict")
    missing = http.get("/expenses/no-such-run")
    assert (missing.status_code, missing.json()["code"]) == (404, "run_not_found")
    assert http.post("/expenses", json={"submitter": "ada", "amount": -1, "description": "x"}).status_code == 422

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0  # the lifespan drained and stopped the worker
    with Client(db) as client:
        assert client.count() == 2
        info = client.get_run(run_id)
        assert [(h.step_id, h.status) for h in info.history] == [
            ("notify", "completed"),
            ("decision", "completed"),
            ("pay", "completed"),
        ]
        assert not client.engine_info().worker_alive  # the lease was released on shutdown
