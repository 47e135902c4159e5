"""The public surface is exactly what engine.__all__ says; changing it is a reviewed decision."""

from __future__ import annotations

import engine
from engine import errors

PUBLIC = [
    "ChildFailed",
    "Client",
    "ConcurrentContextUse",
    "DatabaseCorrupt",
    "DatabaseMissing",
    "DatabaseReadOnly",
    "DeadlineExceeded",
    "DiskFull",
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
    "Parallel",
    "PayloadTooLarge",
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
    "SchemaTooNew",
    "SharedStore",
    "SignalInfo",
    "SignalReceipt",
    "StepCall",
    "StepFailed",
    "Store",
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
    "store_from_url",
    "workflow",
]


def test_public_names_are_pinned() -> None:
    # Adding or removing a public name? Update this list in the same commit, and CHANGELOG.md.
    assert sorted(engine.__all__) == PUBLIC
    assert "Runtime" in PUBLIC
    assert "create_runtime" in PUBLIC
    assert "workflow" in PUBLIC
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_public_objects_read_as_engine_names() -> None:
    for name in engine.__all__:
        obj = getattr(engine, name)
        if isinstance(obj, type):
            assert obj.__module__ == "engine", name


def test_every_error_is_exported_with_a_unique_code() -> None:
    # NonRetryableError is for workflow code to raise, not one of tarry's own errors; an
    # old name kept as an alias (NonDeterministicReplay) is the same class.
    classes = list(dict.fromkeys(getattr(errors, name) for name in errors.__all__ if name != "NonRetryableError"))
    assert not issubclass(engine.NonRetryableError, engine.WorkflowError)
    assert engine.NonDeterministicReplay is engine.NonDeterminismError
    assert all(issubclass(cls, engine.WorkflowError) for cls in classes)
    assert {cls.__name__ for cls in classes} <= set(engine.__all__)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)


def test_errors_name_what_was_wrong() -> None:
    err = engine.RunNotFound("r_42")
    assert err.run_id == "r_42"
    assert "r_42" in str(err)
    assert err.to_dict() == {"code": "run_not_found", "type": "RunNotFound", "message": str(err), "run_id": "r_42"}
