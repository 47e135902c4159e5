"""tarry: durable workflows for Python, on trio, with journals in SQLite or PostgreSQL.

Everything public is here (``tarry.__all__``); the submodules are internal and may
change without notice.

- Define: ``@workflow("id", payload=Schema)`` on ``async def run(ctx)``; ``ctx`` is a
  :class:`RunContext` (``step``, ``sleep``, ``wait_for_event``, ``gather``, ``child``...);
  :class:`Retry` for steps.
- Run in-process: ``create_runtime(workflows=[...], store=SQLiteStore(path))``, then on the
  :class:`Runtime`: ``trigger``, ``signal``, ``result``, ``get_run``, ``cancel``, ``retry``;
  ``async with runtime:`` to serve.
- Run as a daemon: ``tarry worker APP`` (:class:`Worker`); drive it from other processes with
  :class:`Client` (blocking) or :class:`AsyncClient` (asyncio or trio): the same verbs.
- Results: :class:`RunResult`, :class:`RunInfo`; errors: :class:`WorkflowError` and its tree
  (``help(tarry.WorkflowError)``), each with a stable ``code``.
- Stores: :class:`SQLiteStore`, :class:`MemoryStore`, ``PostgresStore`` (the ``postgres``
  extra), :func:`store_from_url`.
- Tests: ``tarry.testing`` (imported as such, not in ``__all__``): :class:`tarry.testing.TarryEnv`
  on virtual time, and the pytest fixtures ``tarry_env``, ``tarry_sqlite_env`` (docs/testing.md).
"""

import contextlib
from typing import TYPE_CHECKING

from .aio import asyncio_step
from .async_client import AsyncClient
from .client import Client, EngineInfo, SignalReceipt, WorkflowInfo
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
    NonRetryableError,
    NotATarryDatabase,
    NotFound,
    NotSerializable,
    PayloadTooLarge,
    PayloadValidationError,
    RunAlreadyExists,
    RunCancelled,
    RunFailed,
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
    UnawaitedCall,
    WaitTimeout,
    WorkflowCodeError,
    WorkflowError,
    WorkflowNotFound,
)
from .hosting import AsyncioHost, hosted
from .results import AuditInfo, HistoryEntry, RunError, RunInfo, RunResult, SignalInfo
from .retry import Retry
from .runtime import Runtime, create_runtime
from .store import MemoryStore, SharedStore, SQLiteStore, Store, store_from_url
from .worker import Worker
from .workflow import Workflow, workflow

if TYPE_CHECKING:
    # Type checkers see the class (``tarry.PostgresStore(url)``); at run time it comes
    # from __getattr__ below, so that psycopg is imported only when it is asked for.
    from .store.postgres import PostgresStore as PostgresStore

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
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
    "NonRetryableError",
    "NotATarryDatabase",
    "NotFound",
    "NotSerializable",
    "PayloadTooLarge",
    "Parallel",
    "PayloadValidationError",
    "Retry",
    "RunAlreadyExists",
    "RunCancelled",
    "RunFailed",
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
    "SignalReceipt",
    "StepCall",
    "StepFailed",
    "Store",
    "store_from_url",
    "StoreBusy",
    "StoreError",
    "UnawaitedCall",
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
    "hosted",
    "workflow",
]

# Tracebacks and reprs read `tarry.RunNotFound`, not `tarry.errors.RunNotFound`.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = "tarry"
del _name, _obj


def __dir__() -> list[str]:
    # dir(tarry), completion and help() show the API, not the submodules imported above.
    return sorted(__all__)


def __getattr__(name: str) -> object:
    # PostgresStore needs psycopg (pip install 'tarry[postgres]'): imported only when asked
    # for, so `import tarry` (and `from tarry import *`) works without it.
    if name == "PostgresStore":
        from .store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'tarry' has no attribute {name!r}")
