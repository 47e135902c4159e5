"""Expense approval over HTTP: a FastAPI app hosts a tarry worker in its lifespan.

Run it (FastAPI and uvicorn are not tarry dependencies: ``pip install 'tarry[examples]'``)::

    TARRY_DB=expenses.db uvicorn examples.fastapi_approval:app

    curl -X POST localhost:8000/expenses -H 'content-type: application/json' \\
         -d '{"submitter": "ada", "amount": 120.5, "description": "train to Lyon"}'
    curl -X POST localhost:8000/expenses/RUN_ID/decision -H 'content-type: application/json' \\
         -d '{"approved": true, "by": "grace"}'
    curl localhost:8000/expenses/RUN_ID

The worker runs as a trio guest of uvicorn's asyncio loop (``tarry.hosted``), and the steps
marked ``@asyncio_step`` run on that same loop, where asyncio clients (httpx.AsyncClient,
aiohttp, asyncpg) live. Each run is durable in the SQLite file: stop the server while an
expense waits for its decision, start it again, and the decision still completes it. The
``tarry`` CLI sees the same runs (``tarry runs --db expenses.db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import tarry
from tarry import SQLiteStore, Worker, asyncio_step, create_runtime, workflow


class Expense(BaseModel):
    submitter: str = Field(min_length=1)
    amount: float = Field(gt=0)
    description: str


class Decision(BaseModel):
    approved: bool
    by: str = Field(min_length=1)
    note: str = ""


@asyncio_step
async def notify_approvers(run_id: str, submitter: str, amount: float) -> dict[str, Any]:
    # An asyncio client's request would go here (httpx.AsyncClient().post(webhook, ...)).
    await asyncio.sleep(0.001)
    return {"notified": "approvers", "link": f"/expenses/{run_id}", "text": f"{submitter} asks for {amount:.2f}"}


@asyncio_step
async def pay(run_id: str, submitter: str, amount: float) -> dict[str, Any]:
    # A payment API called with the run's idempotency key, so a retried step pays once.
    await asyncio.sleep(0.001)
    return {"paid": amount, "to": submitter, "reference": f"PAY-{run_id}"}


@workflow("expense-approval", payload=Expense)
async def expense_approval(ctx: Any) -> dict[str, Any]:
    """Notify the approvers, wait up to a week for a decision, pay if approved."""
    expense: Expense = ctx.payload
    await ctx.step("notify", notify_approvers, ctx.run_id, expense.submitter, expense.amount)
    decision = await ctx.wait_for_event("decision", "decision", timeout={"amount": 7, "unit": "days"})
    if decision is None:
        return {"approved": False, "reason": "nobody decided within a week"}
    if not decision["approved"]:
        return {"approved": False, "by": decision["by"], "note": decision["note"]}
    payment = await ctx.step("pay", pay, ctx.run_id, expense.submitter, expense.amount)
    return {"approved": True, "by": decision["by"], **payment}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = create_runtime(workflows=[expense_approval], store=SQLiteStore(os.environ.get("TARRY_DB", "expenses.db")))
    async with tarry.hosted(Worker(runtime)) as host:  # serves until the app shuts down
        app.state.tarry = host
        yield


app = FastAPI(title="expenses", lifespan=lifespan)


def worker_host(request: Request) -> tarry.AsyncioHost:
    host: tarry.AsyncioHost = request.app.state.tarry
    return host


@app.post("/expenses", status_code=201)
async def submit(expense: Expense, request: Request) -> dict[str, Any]:
    run = await worker_host(request).trigger(expense_approval, expense.model_dump())
    return {"run_id": run.run_id, "status": run.status}


@app.post("/expenses/{run_id}/decision", status_code=202)
async def decide(run_id: str, decision: Decision, request: Request) -> dict[str, Any]:
    # One decision per expense: a client that retries its POST sends it once.
    sent = await worker_host(request).signal(run_id, "decision", decision.model_dump(), dedup_key=f"{run_id}:decision")
    return {"run_id": run_id, "sent": sent}


@app.get("/expenses/{run_id}")
async def show(run_id: str, request: Request) -> dict[str, Any]:
    info = await worker_host(request).get_run(run_id)
    error = None if info.error is None else {"type": info.error.type, "message": info.error.message}
    return {"run_id": run_id, "status": info.status, "output": info.output, "error": error}


# tarry's errors keep their type across the hop from asyncio into trio: map them to HTTP.
_STATUS = {tarry.NotFound: 404, tarry.RunStateError: 409, tarry.InvalidInput: 422}


@app.exception_handler(tarry.WorkflowError)
async def workflow_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, tarry.WorkflowError)
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)
    return JSONResponse(exc.to_dict(), status_code=status)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
