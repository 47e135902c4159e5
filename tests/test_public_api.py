"""The public surface is exactly what tarry.__all__ says; changing it is a reviewed decision."""

from __future__ import annotations

import importlib.metadata
import pydoc
from pathlib import Path

import tarry
from tarry import errors

PUBLIC = [
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
    "DeadlineExceeded",
    "DiskFull",
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
    "Parallel",
    "PayloadTooLarge",
    "PayloadValidationError",
    "Retry",
    "RunAlreadyExists",
    "RunCancelled",
    "RunContext",
    "RunError",
    "RunFailed",
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
    "SchemaTooNew",
    "SharedStore",
    "SignalInfo",
    "SignalReceipt",
    "StepCall",
    "StepFailed",
    "Store",
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
    "store_from_url",
    "workflow",
]


def test_public_names_are_pinned() -> None:
    # Adding or removing a public name? Update this list in the same commit, and CHANGELOG.md.
    assert sorted(tarry.__all__) == PUBLIC
    assert "Runtime" in PUBLIC
    assert "create_runtime" in PUBLIC
    assert "workflow" in PUBLIC
    for name in tarry.__all__:
        assert hasattr(tarry, name), name


def test_public_objects_read_as_tarry_names() -> None:
    for name in tarry.__all__:
        obj = getattr(tarry, name)
        if isinstance(obj, type):
            assert obj.__module__ == "tarry", name


def test_every_error_is_exported_with_a_unique_code() -> None:
    # NonRetryableError is for workflow code to raise, not one of tarry's own errors.
    classes = [getattr(errors, name) for name in errors.__all__ if name != "NonRetryableError"]
    assert not issubclass(tarry.NonRetryableError, tarry.WorkflowError)
    defined = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, tarry.WorkflowError)}
    assert defined == set(classes), "an error class missing from errors.__all__"
    assert all(issubclass(cls, tarry.WorkflowError) for cls in classes)
    assert {cls.__name__ for cls in classes} <= set(tarry.__all__)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)


def test_errors_name_what_was_wrong() -> None:
    err = tarry.RunNotFound("r_42")
    assert err.run_id == "r_42"
    assert "r_42" in str(err)
    assert err.to_dict() == {"code": "run_not_found", "type": "RunNotFound", "message": str(err), "run_id": "r_42"}


def test_no_pre_release_aliases_or_second_constructors() -> None:
    # Never released (CHANGELOG.md has no release yet): one name per thing.
    for name in ("NonDeterministicReplay", "RetryPolicy", "define_workflow"):
        assert not hasattr(tarry, name), name
    assert "create_runtime" in tarry.__all__  # the one way to build a runtime the README shows


def test_dir_and_help_show_the_api_not_the_submodules() -> None:
    assert dir(tarry) == sorted(tarry.__all__)
    assert "actor" not in dir(tarry)
    text = pydoc.render_doc(tarry, renderer=pydoc.plaintext)
    classes = text.split("\nCLASSES\n", 1)[1].split("\nFUNCTIONS\n", 1)[0]
    for internal in ("tarry.results", "tarry.errors", "tarry.client", "tarry.runtime"):
        assert internal not in classes, internal
    for name in ("Runtime", "Client", "AsyncClient", "RunFailed", "WorkflowError"):
        assert f"class {name}(" in classes, name


def test_the_version_is_written_once() -> None:
    assert importlib.metadata.version("tarry") == tarry.__version__
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert tarry.__version__ not in pyproject
    assert 'dynamic = ["version"]' in pyproject
    licence = (Path(__file__).resolve().parent.parent / "LICENSE").read_text()
    assert licence.startswith("MIT License\n\nCopyright (c) 2026 the tarry authors\n")
    assert 'license = { text = "MIT" }' in pyproject
