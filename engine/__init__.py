"""tarry: durable workflows for Python, on trio, with journals in SQLite.

Everything public is re-exported here; the submodules are internal.
"""

import contextlib

from .aio import asyncio_step
from .client import Client, EngineInfo, WorkflowInfo
from .context import Parallel, RunContext, StepCall
from .errors import (
    AsyncioStepCancelled,
    ChildFailed,
    ConcurrentContextUse,
    DatabaseCorrupt,
    DatabaseMissing,
    DatabaseReadOnly,
    DeadlineExceeded,
    DiskFull,
    DuplicateStepId,
    HostNotServing,
    IdempotencyConflict,
    InvalidArgument,
    InvalidCron,
    InvalidDuration,
    InvalidInput,
    LeaseLost,
    NeedsAsyncio,
    NeedsTrio,
    NonDeterminismError,
    NonDeterministicReplay,
    NonRetryableError,
    NotATarryDatabase,
    NotFound,
    NotSerializable,
    PayloadTooLarge,
    PayloadValidationError,
    RunAlreadyExists,
    RunCancelled,
    RunFinished,
    RunNotFound,
    RunNotRetryable,
    RunQuarantined,
    RunStateError,
    RunStillActive,
    SchemaTooNew,
    StepFailed,
    StoreBusy,
    StoreError,
    WaitTimeout,
    WorkflowCodeError,
    WorkflowError,
    WorkflowNotFound,
)
from .hosting import AsyncioHost, hosted
from .results import AuditInfo, HistoryEntry, RunError, RunInfo, RunResult, SignalInfo
from .retry import Retry, RetryPolicy
from .runtime import Runtime, create_runtime
from .store import MemoryStore, SharedStore, SQLiteStore, Store, store_from_url
from .worker import Worker
from .workflow import Workflow, define_workflow, workflow

__version__ = "0.1.0"

__all__ = [
    "AsyncioHost",
    "AsyncioStepCancelled",
    "AuditInfo",
    "ChildFailed",
    "Client",
    "ConcurrentContextUse",
    "DatabaseCorrupt",
    "DatabaseMissing",
    "DatabaseReadOnly",
    "DiskFull",
    "DeadlineExceeded",
    "DuplicateStepId",
    "EngineInfo",
    "HistoryEntry",
    "HostNotServing",
    "IdempotencyConflict",
    "InvalidArgument",
    "InvalidCron",
    "InvalidDuration",
    "InvalidInput",
    "LeaseLost",
    "MemoryStore",
    "NeedsAsyncio",
    "NeedsTrio",
    "NonDeterminismError",
    "NonDeterministicReplay",
    "NonRetryableError",
    "NotATarryDatabase",
    "NotFound",
    "NotSerializable",
    "PayloadTooLarge",
    "Parallel",
    "PayloadValidationError",
    "Retry",
    "RetryPolicy",
    "RunAlreadyExists",
    "RunCancelled",
    "RunContext",
    "RunError",
    "RunFinished",
    "RunInfo",
    "RunNotFound",
    "RunNotRetryable",
    "RunQuarantined",
    "RunResult",
    "RunStateError",
    "RunStillActive",
    "Runtime",
    "SQLiteStore",
    "SharedStore",
    "SchemaTooNew",
    "SignalInfo",
    "StepCall",
    "StepFailed",
    "Store",
    "store_from_url",
    "StoreBusy",
    "StoreError",
    "WaitTimeout",
    "Worker",
    "Workflow",
    "WorkflowCodeError",
    "WorkflowError",
    "WorkflowInfo",
    "WorkflowNotFound",
    "__version__",
    "asyncio_step",
    "create_runtime",
    "define_workflow",
    "hosted",
    "workflow",
]

# Tracebacks and reprs read `engine.RunNotFound`, not `engine.errors.RunNotFound`.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = "engine"
del _name, _obj


def __getattr__(name: str) -> object:
    # PostgresStore needs psycopg (pip install 'tarry[postgres]'): imported only when asked
    # for, so `import engine` (and `from engine import *`) works without it.
    if name == "PostgresStore":
        from .store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
