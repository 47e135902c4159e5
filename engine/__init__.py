"""tarry: durable workflows for Python, on trio, with journals in SQLite.

Everything public is re-exported here; the submodules are internal.
"""

import contextlib

from .client import Client, EngineInfo, SignalReceipt, WorkflowInfo
from .context import Parallel, RunContext, StepCall
from .errors import (
    ChildFailed,
    ConcurrentContextUse,
    DatabaseCorrupt,
    DatabaseMissing,
    DatabaseReadOnly,
    DeadlineExceeded,
    DiskFull,
    DuplicateStepId,
    IdempotencyConflict,
    InvalidArgument,
    InvalidCron,
    InvalidDuration,
    InvalidInput,
    LeaseLost,
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
    SchemaTooNew,
    StepFailed,
    StoreBusy,
    StoreError,
    WaitTimeout,
    WorkflowCodeError,
    WorkflowError,
    WorkflowNotFound,
)
from .results import HistoryEntry, RunError, RunInfo, RunResult, SignalInfo
from .retry import Retry, RetryPolicy
from .runtime import Runtime, create_runtime
from .store import MemoryStore, SharedStore, SQLiteStore, Store, store_from_url
from .worker import Worker
from .workflow import Workflow, define_workflow, workflow

__version__ = "0.1.0"

__all__ = [
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
    "IdempotencyConflict",
    "InvalidArgument",
    "InvalidCron",
    "InvalidDuration",
    "InvalidInput",
    "LeaseLost",
    "MemoryStore",
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
    "Runtime",
    "SQLiteStore",
    "SharedStore",
    "SchemaTooNew",
    "SignalInfo",
    "SignalReceipt",
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
    "create_runtime",
    "define_workflow",
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
