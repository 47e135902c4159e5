"""Every error tarry raises on purpose.

All of them derive from :class:`WorkflowError`, carry a stable string ``code`` (safe to
match on, printed by the CLI's ``--json``) and keep the identifiers they are about as
attributes (``run_id``, ``step_id``, ``workflow_id``, ``field`` ...). The message names the
problem and, where there is one, the fix. Grouped by whose fault it is::

    WorkflowError
    ├── InvalidInput                 the caller passed something wrong; nothing was written
    │   ├── PayloadValidationError   payload does not match the workflow's schema
    │   ├── InvalidDuration          a sleep/timeout spec that is not a duration
    │   │   └── InvalidCron          a cron expression or time zone that does not parse
    │   ├── InvalidArgument          an empty id, a bad option value, a bad definition
    │   └── NotSerializable          a value that is not JSON (payload, step output, signal)
    ├── NotFound
    │   ├── WorkflowNotFound         no workflow registered under that id
    │   └── RunNotFound              no run with that id in the store
    ├── RunStateError                the run exists but cannot do that now
    │   ├── RunFinished              signal/cancel to a completed, failed or cancelled run
    │   ├── RunNotRetryable          retry of a run that has not failed
    │   ├── RunStillActive           delete of a run that has not ended
    │   ├── RunAlreadyExists         trigger with a run id taken by another workflow
    │   └── IdempotencyConflict      a repeated trigger/signal with other contents
    ├── WorkflowCodeError            the workflow's code broke a rule; the run fails with it
    │   ├── DuplicateStepId          two durable calls with one id in one run
    │   ├── NonDeterminismError      the code no longer matches the run's journal
    │   ├── ConcurrentContextUse     two ctx calls of one run awaited at the same time
    │   ├── UnawaitedCall            a ctx.step(...) made but never awaited nor gathered
    │   └── NeedsAsyncio             a step uses asyncio but is not an asyncio_step
    ├── StepFailed                   a step raised after its last attempt (catchable)
    │   └── ChildFailed              a child run ended failed or cancelled (catchable)
    ├── AsyncioStepCancelled         an asyncio_step's task was cancelled on the asyncio side
    ├── DeadlineExceeded             the run passed its workflow's ``deadline``
    ├── RunFailed                    result(): the run ended failed (its error attached)
    ├── RunCancelled                 result(): the run was cancelled (also raised inside it)
    ├── WaitTimeout                  result() / Client.wait gave up (also a TimeoutError)
    ├── HostNotServing               a call through an AsyncioHost that is not serving
    ├── NeedsTrio                    a Runtime's verb awaited outside trio (under asyncio)
    └── StoreError                   the database cannot be used as it is
        ├── StoreBusy                locked by another writer past the busy timeout
        ├── NotATarryDatabase        the file exists but was not made by tarry
        ├── SchemaTooNew             written by a newer tarry; upgrade to read it
        ├── DatabaseMissing          no file there, and the caller asked not to create one
        ├── DatabaseCorrupt          the file is damaged (fails SQLite's quick_check)
        ├── DatabaseReadOnly         the file or its directory cannot be written
        ├── DiskFull                 a commit found no space; nothing of it was written
        └── LeaseLost                another worker took this database over

:class:`NonRetryableError` is the one exception meant for workflow code to raise: a step
that raises it is not retried, whatever its ``Retry`` says.

Nothing above ``tarry.store`` ever sees ``sqlite3`` exceptions: the store maps them here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import RunError

__all__ = [
    "AsyncioStepCancelled",
    "ChildFailed",
    "ConcurrentContextUse",
    "DeadlineExceeded",
    "DatabaseCorrupt",
    "DatabaseMissing",
    "DatabaseReadOnly",
    "DiskFull",
    "DuplicateStepId",
    "HostNotServing",
    "IdempotencyConflict",
    "InvalidArgument",
    "InvalidCron",
    "InvalidDuration",
    "InvalidInput",
    "LeaseLost",
    "NeedsAsyncio",
    "NeedsTrio",
    "NonDeterminismError",
    "NonRetryableError",
    "NotATarryDatabase",
    "NotFound",
    "NotSerializable",
    "PayloadTooLarge",
    "PayloadValidationError",
    "RunAlreadyExists",
    "RunCancelled",
    "RunFailed",
    "RunFinished",
    "RunNotFound",
    "RunNotRetryable",
    "RunQuarantined",
    "RunStillActive",
    "RunStateError",
    "SchemaTooNew",
    "StepFailed",
    "StoreBusy",
    "StoreError",
    "UnawaitedCall",
    "WaitTimeout",
    "WorkflowCodeError",
    "WorkflowError",
    "WorkflowNotFound",
]


class WorkflowError(Exception):
    """Base of every error tarry raises on purpose.

    ``code`` is a stable identifier per class (``run_not_found``, ``payload_invalid``...);
    ``to_dict()`` gives the code, the message and the identifiers, JSON-ready.
    """

    code: str = "workflow_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        for key, value in details.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "type": type(self).__name__, "message": self.message, **self.details}


# -- the caller's input ------------------------------------------------------------------


class InvalidInput(WorkflowError):
    code = "invalid_input"


class PayloadValidationError(InvalidInput):
    """The payload (or event payload) does not pass the workflow's schema.

    ``errors`` is a list of ``{"field": "a.b", "message": "..."}`` from the validator;
    ``field`` is the first failing field (or ``None`` when the validator named none).
    """

    code = "payload_invalid"
    workflow_id: str
    errors: list[dict[str, str]]
    field: str | None

    def __init__(self, workflow_id: str, errors: list[dict[str, str]], *, what: str = "payload") -> None:
        listed = "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"] for e in errors)
        super().__init__(
            f"invalid {what} for workflow {workflow_id!r}: {listed}",
            workflow_id=workflow_id,
            errors=errors,
            field=(errors[0].get("field") or None) if errors else None,
        )


class InvalidDuration(InvalidInput):
    code = "duration_invalid"
    value: str
    reason: str
    step_id: str | None

    def __init__(self, value: Any, reason: str, *, step_id: str | None = None) -> None:
        where = f" (step {step_id!r})" if step_id else ""
        super().__init__(
            f"invalid duration {value!r}{where}: {reason}. Use seconds (int/float), a timedelta, "
            '{"amount": 2, "unit": "hours"} or {"cron": "0 9 * * *", "tz": "Europe/Berlin"}',
            value=repr(value),
            reason=reason,
            step_id=step_id,
        )


class InvalidCron(InvalidDuration):
    code = "cron_invalid"


class InvalidArgument(InvalidInput):
    code = "invalid_argument"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


class NotSerializable(InvalidInput):
    """A value that must be stored is not JSON: ``what`` says which (step output, payload...)."""

    code = "not_serializable"
    what: str
    type_name: str
    run_id: str | None
    step_id: str | None

    def __init__(self, what: str, type_name: str, *, run_id: str | None = None, step_id: str | None = None) -> None:
        where = "".join([f" of step {step_id!r}" if step_id else "", f" in run {run_id!r}" if run_id else ""])
        super().__init__(
            f"the {what}{where} is not JSON-serialisable: {type_name} cannot be stored. "
            "Return plain JSON values (dict, list, str, int, float, bool, None), a dataclass or a "
            "pydantic/msgspec model",
            what=what,
            type_name=type_name,
            run_id=run_id,
            step_id=step_id,
        )


class PayloadTooLarge(InvalidInput):
    """A payload, signal payload or output is larger than its configured limit (in bytes).

    Nothing is written. Raise the limit (``create_runtime(..., max_payload_bytes=...)``,
    ``max_output_bytes``, ``Client(max_payload_bytes=...)``) or store the blob elsewhere
    and pass its key.
    """

    code = "payload_too_large"
    what: str
    size: int
    limit: int
    run_id: str | None
    step_id: str | None

    def __init__(
        self, what: str, size: int, limit: int, *, run_id: str | None = None, step_id: str | None = None
    ) -> None:
        where = "".join([f" of step {step_id!r}" if step_id else "", f" in run {run_id!r}" if run_id else ""])
        super().__init__(
            f"the {what}{where} is {size:,} bytes as JSON, over the limit of {limit:,}: store large data "
            "outside the journal (a file or object store) and pass its key, or raise the limit",
            what=what,
            size=size,
            limit=limit,
            run_id=run_id,
            step_id=step_id,
        )


# -- things that do not exist ---------------------------------------------------------------


class NotFound(WorkflowError):
    code = "not_found"


class WorkflowNotFound(NotFound):
    code = "workflow_not_found"
    workflow_id: str
    known: list[str]

    def __init__(self, workflow_id: str, known: list[str], *, published: bool = False) -> None:
        hint = ", ".join(sorted(known)) or "none"
        if published:  # a Client checked the registry the workers published
            text = (
                f"no worker has published a workflow {workflow_id!r} (published: {hint}); check the id, "
                "or start a worker that serves it (tarry trigger --force queues the run anyway)"
            )
        else:
            text = (
                f"no workflow registered with id {workflow_id!r} (registered: {hint}); "
                "pass it to create_runtime(workflows=[...]) or runtime.register()"
            )
        super().__init__(text, workflow_id=workflow_id, known=sorted(known))


class RunNotFound(NotFound):
    code = "run_not_found"
    run_id: str

    def __init__(self, run_id: str, *, min_prefix: int | None = None) -> None:
        text = f"no run with id {run_id!r} in this store"
        if min_prefix is not None:  # a prefix was looked up too (Client.resolve_run_id)
            text = (
                f"no run with id {run_id!r} in this store, nor one whose id starts with it "
                f"(a prefix needs at least {min_prefix} characters); list them with tarry runs"
                if len(run_id) >= min_prefix
                else f"no run with id {run_id!r} in this store (a prefix needs at least {min_prefix} "
                "characters); list them with tarry runs"
            )
        super().__init__(text, run_id=run_id)


# -- runs in the wrong state --------------------------------------------------------------


class RunStateError(WorkflowError):
    code = "run_state"


class RunFinished(RunStateError):
    code = "run_finished"
    run_id: str
    status: str
    action: str

    def __init__(self, run_id: str, status: str, action: str) -> None:
        super().__init__(
            f"cannot {action} run {run_id!r}: it has already ended ({status})",
            run_id=run_id,
            status=status,
            action=action,
        )


class RunNotRetryable(RunStateError):
    code = "run_not_retryable"
    run_id: str
    status: str
    from_step: str | None

    def __init__(self, run_id: str, status: str, from_step: str | None = None) -> None:
        if from_step is None:
            message = f"cannot retry run {run_id!r}: only failed runs can be retried, this one is {status}"
        else:
            message = (
                f"cannot re-run run {run_id!r} from step {from_step!r}: it is {status}; "
                "cancel it or let it end first (only ended runs are forked)"
            )
        super().__init__(message, run_id=run_id, status=status, from_step=from_step)


class RunStillActive(RunStateError):
    code = "run_still_active"
    run_id: str
    status: str
    action: str

    def __init__(self, run_id: str, status: str, action: str) -> None:
        super().__init__(
            f"cannot {action} run {run_id!r}: it is still {status}; cancel it (or let it end) first",
            run_id=run_id,
            status=status,
            action=action,
        )


class IdempotencyConflict(RunStateError):
    """A repeated trigger (same ``run_id``) or signal (same ``dedup_key``) that carries
    something else than the first one did; nothing was written."""

    code = "idempotency_conflict"
    run_id: str
    what: str

    def __init__(self, run_id: str, what: str, fix: str) -> None:
        super().__init__(f"run {run_id!r}: {what}; {fix}", run_id=run_id, what=what)


class RunAlreadyExists(RunStateError):
    code = "run_exists"
    run_id: str
    workflow_id: str

    def __init__(self, run_id: str, workflow_id: str) -> None:
        super().__init__(
            f"run id {run_id!r} is already taken by a run of workflow {workflow_id!r}",
            run_id=run_id,
            workflow_id=workflow_id,
        )


# -- the workflow's code broke a rule (the run fails with these) ---------------------------


class WorkflowCodeError(WorkflowError):
    code = "workflow_code"


class DuplicateStepId(WorkflowCodeError):
    code = "step_duplicate"
    run_id: str
    step_id: str

    def __init__(self, run_id: str, step_id: str) -> None:
        super().__init__(
            f"step id {step_id!r} is used twice in run {run_id!r}; every ctx.step / ctx.sleep / "
            "ctx.wait_for_event in one run needs its own id (add a loop index, e.g. f'charge-{i}')",
            run_id=run_id,
            step_id=step_id,
        )


class NonDeterminismError(WorkflowCodeError):
    """The code no longer matches the run's journal: at ``position`` the journal recorded
    ``recorded`` and the code now does ``attempted``. ``step_id`` names the step the code
    reached there (or the recorded one when the code stopped short)."""

    code = "nondeterministic_replay"
    run_id: str
    position: int
    recorded: str | None
    attempted: str | None
    step_id: str | None

    def __init__(
        self, run_id: str, position: int, recorded: str | None, attempted: str | None, *, step_id: str | None = None
    ) -> None:
        super().__init__(
            f"run {run_id!r} no longer matches its journal at position {position}: the journal "
            f"recorded {recorded or 'nothing more'}, the code now does {attempted or 'nothing more'}. "
            "Check that your workflow is deterministic (branch only on payload, step results, "
            "ctx.now() and ctx.uuid()); to change the code of runs in flight, guard the new path "
            'with `if ctx.patched("name"):`. After fixing the code, retry() resumes the run',
            run_id=run_id,
            position=position,
            recorded=recorded,
            attempted=attempted,
            step_id=step_id,
        )


class ConcurrentContextUse(WorkflowCodeError):
    code = "concurrent_ctx"
    run_id: str
    step_id: str
    busy_with: str

    def __init__(self, run_id: str, step_id: str, busy_with: str) -> None:
        super().__init__(
            f"run {run_id!r} called ctx for {step_id!r} while {busy_with!r} was still running; "
            "a run's durable calls must be awaited one at a time; run steps concurrently with "
            "ctx.gather(ctx.step(...), ...) or `async with ctx.parallel()`",
            run_id=run_id,
            step_id=step_id,
            busy_with=busy_with,
        )


class UnawaitedCall(WorkflowCodeError):
    """A ``ctx.step(...)`` was made but never awaited (nor given to ``ctx.gather``): the
    step never ran. The run fails with this when its workflow function returns, instead of
    completing without the step."""

    code = "step_unawaited"
    run_id: str
    step_id: str

    def __init__(self, run_id: str, step_id: str) -> None:
        super().__init__(
            f"run {run_id!r}: ctx.step({step_id!r}, ...) was never awaited, so the step never ran; "
            f"add await (`await ctx.step({step_id!r}, ...)`) or pass it to ctx.gather",
            run_id=run_id,
            step_id=step_id,
        )


# -- raised into the workflow ---------------------------------------------------------------


class StepFailed(WorkflowError):
    """A step raised on its last attempt.

    Raised inside the workflow by ``ctx.step`` (the original exception is ``__cause__`` on
    the first execution; on replay only its recorded type, message and traceback exist, so
    match on ``error_type``). Left uncaught, the run fails with the step's original error.
    """

    code = "step_failed"
    run_id: str
    step_id: str
    error_type: str
    error_message: str
    attempts: int
    traceback: str

    def __init__(
        self, run_id: str, step_id: str, error_type: str, error_message: str, attempts: int, traceback: str = ""
    ) -> None:
        super().__init__(
            f"step {step_id!r} of run {run_id!r} failed after {attempts} attempt(s): {error_type}: {error_message}",
            run_id=run_id,
            step_id=step_id,
            error_type=error_type,
            error_message=error_message,
            attempts=attempts,
            traceback=traceback,
        )


class ChildFailed(StepFailed):
    """The child run a ``ctx.child`` call waited for ended ``failed`` or ``cancelled``.

    ``child_run_id`` names it; ``error_type`` and ``error_message`` are its error (or
    ``RunCancelled`` and the reason). Left uncaught, the parent fails with it.
    """

    code = "child_failed"
    child_run_id: str

    def __init__(
        self, run_id: str, step_id: str, child_run_id: str, error_type: str, error_message: str, traceback: str = ""
    ) -> None:
        StepFailed.__init__(self, run_id, step_id, error_type, error_message, 1, traceback)
        self.message = (
            f"child run {child_run_id!r} (step {step_id!r} of run {run_id!r}) ended with {error_type}: {error_message}"
        )
        self.args = (self.message,)
        self.child_run_id = child_run_id
        self.details["child_run_id"] = child_run_id


class DeadlineExceeded(WorkflowError):
    """The run was still going at its workflow's ``deadline``; it fails with this."""

    code = "deadline_exceeded"
    run_id: str
    deadline: float
    seconds: float

    def __init__(self, run_id: str, deadline: float, seconds: float) -> None:
        super().__init__(
            f"run {run_id!r} passed its deadline ({seconds:g}s after it started); "
            "raise the workflow's deadline= or make it faster, then retry() resumes it",
            run_id=run_id,
            deadline=deadline,
            seconds=seconds,
        )


class RunQuarantined(WorkflowError):
    """Recovery picked the run up more than the runtime's ``max_recoveries`` times without
    it getting past one point of its journal: whatever it does there ends the process
    (a segfault, the OOM killer, ``os._exit``). It fails with this instead of taking each
    new worker down; :meth:`Runtime.retry` after a fix re-drives it with a fresh count."""

    code = "run_quarantined"
    run_id: str
    recoveries: int
    after_step: str | None

    def __init__(self, run_id: str, recoveries: int, after_step: str | None, mark: int) -> None:
        where = f"after step {after_step!r}" if after_step is not None else "before its first step"
        super().__init__(
            f"run {run_id!r} quarantined: recovery found it left running {recoveries} times {where} "
            f"(journal mark {mark}) without it getting further, so something there ends the process "
            "driving it; find what in the dead workers' logs, fix it, then retry the run",
            run_id=run_id,
            recoveries=recoveries,
            after_step=after_step,
        )


class NonRetryableError(Exception):
    """Raise it from a step to fail the step at once: no further attempt, whatever the
    step's ``Retry`` says. The run sees a :class:`StepFailed` whose ``error_type`` is
    ``"NonRetryableError"`` (or your subclass's name)."""


class NeedsAsyncio(WorkflowCodeError, NonRetryableError):
    """A step's code needs a running asyncio event loop (an asyncio library: aiohttp,
    asyncpg, redis.asyncio, ``asyncio.sleep``...) but its function is not an
    :func:`asyncio_step`, so it ran on trio. Its step is not retried (the same code fails
    the same way) and the run fails with this, even if the workflow catches the step's
    failure; mark the function, then ``retry()`` the run. ``error`` is what asyncio said."""

    code = "step_needs_asyncio"
    run_id: str
    step_id: str
    error: str

    def __init__(self, run_id: str, step_id: str, error: str) -> None:
        super().__init__(
            f"step {step_id!r} of run {run_id!r} needs asyncio ({error}), but steps run on trio; "
            "decorate its function with @tarry.asyncio_step (or pass tarry.asyncio_step(fn) to "
            "ctx.step) so that it runs on an asyncio loop, then retry the run",
            run_id=run_id,
            step_id=step_id,
            error=error,
        )


class AsyncioStepCancelled(WorkflowError):
    """The asyncio task of an :func:`asyncio_step` was cancelled on the asyncio side, not by
    tarry (its loop shut down under it, or other code cancelled the task). The attempt fails
    with this and is retried as the step's ``Retry`` says; a cancellation that comes from
    tarry (the run cancelled, a step timeout, the runtime stopping) cancels the task instead."""

    code = "asyncio_step_cancelled"
    step: str

    def __init__(self, step: str) -> None:
        super().__init__(
            f"the asyncio task of step {step} was cancelled on the asyncio side (its loop stopped, or "
            "other code cancelled it)",
            step=step,
        )


class RunCancelled(WorkflowError):
    """The run was cancelled: raised inside its workflow where it stood (as the step's
    or the wait's error, for ``finally`` blocks), and by ``result()`` of a cancelled run.
    ``reason`` is what the cancel said."""

    code = "run_cancelled"
    run_id: str
    reason: str | None

    def __init__(self, run_id: str, reason: str | None) -> None:
        super().__init__(
            f"run {run_id!r} was cancelled" + (f": {reason}" if reason else ""), run_id=run_id, reason=reason
        )


class RunFailed(WorkflowError):
    """``result()`` of a run that ended ``failed``.

    ``error`` is the run's :class:`RunError` (``type``, ``message``, ``traceback``,
    ``code`` for tarry's own errors, ``step_id`` of the step whose failure ended it);
    ``error_type``, ``error_message`` and ``step_id`` repeat it for ``to_dict()``. Fix the
    cause, then ``retry(run_id)`` re-drives the run from its journal.
    """

    code = "run_failed"
    run_id: str
    workflow_id: str
    error_type: str
    error_message: str
    step_id: str | None

    def __init__(self, run_id: str, workflow_id: str, error: RunError) -> None:
        where = f" in step {error.step_id!r}" if error.step_id else ""
        super().__init__(
            f"run {run_id!r} ({workflow_id}) failed{where}: {error.type}: {error.message}",
            run_id=run_id,
            workflow_id=workflow_id,
            error_type=error.type,
            error_message=error.message,
            step_id=error.step_id,
        )
        self.error = error


class WaitTimeout(WorkflowError, TimeoutError):
    """``result()`` or ``Client.wait`` (``tarry wait``, ``tarry ... --wait --timeout``) gave
    up before the run ended (``until="end"``) or suspended or ended (``until="rest"``).
    ``status`` is the run's status when it gave up; the run itself goes on."""

    code = "wait_timeout"
    run_id: str
    timeout: float
    status: str
    until: str

    def __init__(self, run_id: str, timeout: float, status: str, *, until: str = "rest") -> None:
        awaited = "end" if until == "end" else "suspend or end"
        super().__init__(
            f"run {run_id!r} did not {awaited} within {timeout:g}s (it is {status}, and goes on); "
            "wait longer, or check that a worker serves this database (tarry worker APP)",
            run_id=run_id,
            timeout=timeout,
            status=status,
            until=until,
        )


class HostNotServing(WorkflowError):
    """A call through an :class:`AsyncioHost` (``host.trigger`` ...) while its runtime is
    not serving: the host was not entered yet, is still standing by for its worker's lease,
    or has stopped (also when it stopped while the call was in flight). When the runtime
    stopped because it failed, that error is the ``__cause__``."""

    code = "host_not_serving"
    state: str

    def __init__(self, state: str) -> None:
        super().__init__(
            f"the tarry runtime hosted in this asyncio loop is {state}; call it inside "
            "`async with tarry.hosted(runtime) as host:` (in a FastAPI lifespan: around its `yield`)",
            state=state,
        )


class NeedsTrio(WorkflowError):
    """A :class:`Runtime`'s verb (``trigger``, ``async with runtime:`` ...) was awaited
    outside a trio task, typically under ``asyncio.run``. tarry runs on trio: run the program
    with ``trio.run``, or host the runtime in the asyncio application with
    :func:`tarry.hosted` and call its verbs there. Nothing was written."""

    code = "needs_trio"

    def __init__(self) -> None:
        super().__init__(
            "a tarry Runtime runs on trio, and this was awaited outside a trio task (under asyncio?); "
            "run the program with trio.run(main), or host the runtime in your asyncio app: "
            "`async with tarry.hosted(runtime) as host:` and `await host.trigger(...)`"
        )


# -- the store ----------------------------------------------------------------------------


class StoreError(WorkflowError):
    code = "store_error"


class StoreBusy(StoreError):
    code = "store_busy"
    path: str

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"database {path!r} stayed locked by another writer ({detail}); retry, or make sure "
            "only one tarry worker writes to it",
            path=path,
        )


class NotATarryDatabase(StoreError):
    code = "store_foreign"
    path: str

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"{path!r} is not a tarry database ({detail}); point --db / SQLiteStore at a new file "
            "or at one tarry created",
            path=path,
        )


class SchemaTooNew(StoreError):
    code = "schema_too_new"
    path: str
    found: int
    supported: int

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"database {path!r} has schema version {found}, this tarry supports up to {supported}; "
            "upgrade tarry to open it (it is left untouched)",
            path=path,
            found=found,
            supported=supported,
        )


class DatabaseMissing(StoreError):
    code = "store_missing"
    path: str

    def __init__(self, path: str) -> None:
        super().__init__(
            f"there is no tarry database at {path!r}: check the path (--db / TARRY_DB); a worker "
            "creates it when it starts, and so does tarry trigger --create",
            path=path,
        )


class DatabaseCorrupt(StoreError):
    """SQLite found the file damaged: at open (``PRAGMA quick_check``) or when a read or
    write reached a damaged page. tarry writes nothing more to it."""

    code = "store_corrupt"
    path: str

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"database {path!r} is damaged ({detail}); stop the workers, restore it from a backup, or "
            f"save what can be read with `sqlite3 {path} .recover | sqlite3 recovered.db`",
            path=path,
        )


class DatabaseReadOnly(StoreError):
    """The file (or its directory, where SQLite keeps the ``-wal`` and ``-shm`` files)
    cannot be written: a read-only mount, permissions, an immutable file."""

    code = "store_read_only"
    path: str

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"database {path!r} cannot be written ({detail}); tarry needs to write the file and "
            "create files beside it: check the permissions of both and that the mount is read-write",
            path=path,
        )


class DiskFull(StoreError):
    """A commit found no space on the disk. The transaction was rolled back whole: what was
    committed before is intact, and the write can be made again once there is room (a
    worker drives the runs it concerned again by itself)."""

    code = "store_full"
    path: str

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"database {path!r}: the disk is full ({detail}); nothing of this write was committed. "
            "Free space on its filesystem: runs go on from their last commit",
            path=path,
        )


class LeaseLost(StoreError):
    """This worker no longer holds the database's lease: another worker took it over (this
    one stalled past the lease's expiry). Nothing more is committed by the one that lost it."""

    code = "lease_lost"
    path: str
    owner: str
    holder: str | None

    def __init__(self, path: str, owner: str, holder: str | None) -> None:
        super().__init__(
            f"worker {owner} lost its lease on {path!r} to {holder or 'nobody'}; it stops driving "
            "runs (the new holder recovers them). Was this process paused or starved past the lease?",
            path=path,
            owner=owner,
            holder=holder,
        )
