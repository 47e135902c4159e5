"""Smoke test of ``bench/``: every case runs with a tiny N in its own process and prints one
JSON line with the keys of WORKLOADS.md and ``"ok": true``. No figure is checked: the
benchmarks measure, they are never asserted on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

COMMON = {"engine", "version", "store", "synchronous", "workload", "n", "ok", "limit_commits_per_s"}
#: The keys of each workload in /work/shared/bench/WORKLOADS.md (kept exact: other engines
#: print the same ones).
FIGURES = {
    "steps": {"runs_per_s", "steps_per_s", "wall_s"},
    "sleep": {"overhead_s", "runs_per_s", "start_all_s", "late_p50_ms", "late_p99_ms"},
    "signal": {"p50_ms", "p99_ms"},
    "memory": {"rss_bytes_per_run", "db_bytes_per_run"},
    "client": {"runs_per_s", "steps_per_s"},
    "restart": {"ready_s", "rss_bytes"},
}
#: case id -> (workload, mode, extra arguments)
CASES = {
    "steps-seq": ("steps", "seq", []),
    "steps-conc": ("steps", "conc", []),
    "steps-conc-full": ("steps", "conc", ["--synchronous", "FULL"]),
    "steps-conc-memory": ("steps", "conc", ["--store", "memory"]),
    "sleep": ("sleep", None, []),
    "signal": ("signal", "same-process", []),
    "signal-cross-process": ("signal", "cross-process", []),
    "memory": ("memory", None, ["--passivate-after", "0.2"]),
    "client": ("client", None, []),
    "restart": ("restart", None, []),
}
#: Cases that may report themselves unavailable (exit 3) until tarry.Client exists.
MAY_BE_UNAVAILABLE = {"signal-cross-process", "client"}
N = 6
TIMEOUT = 60


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Start every case at once (they mostly wait: a sleep, a passivation), then collect."""
    procs = {}
    for case, (workload, mode, extra) in CASES.items():
        argv = [
            sys.executable,
            "-m",
            "bench.case",
            workload,
            "--n",
            str(N),
            "--dir",
            str(tmp_path_factory.mktemp(case)),
        ]
        if mode is not None:
            argv += ["--mode", mode]
        procs[case] = subprocess.Popen(
            [*argv, *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    done = {}
    try:
        for case, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
            done[case] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


@pytest.mark.subprocess
@pytest.mark.parametrize("case", list(CASES))
def test_case_prints_one_ok_line_with_the_workload_keys(
    outcomes: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    workload, mode, _ = CASES[case]
    done = outcomes[case]
    if done.returncode == 3 and case in MAY_BE_UNAVAILABLE:
        assert "skipped" in done.stderr
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    [line] = [json.loads(text) for text in done.stdout.splitlines()]
    expected = COMMON | FIGURES[workload] | ({"mode"} if mode is not None else set())
    assert set(line) == expected, done.stderr
    assert line["ok"] is True, (line, done.stderr)
    assert (line["engine"], line["workload"], line["n"], line.get("mode")) == ("tarry", workload, N, mode)
    assert line["limit_commits_per_s"] > 0


def _script_lines(*argv: str) -> list[dict[str, object]]:
    """Run ``python -m <argv>`` from the repository root; its stdout's JSON lines."""
    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(text) for text in done.stdout.splitlines()]


@pytest.mark.subprocess
def test_long_run_script_prints_its_figure() -> None:
    [line] = _script_lines("bench.long_run", "--steps", "5", "--reps", "1")
    assert (line["workload"], line["n"]) == ("long_run", 5)
    assert line["steps_per_s"] > 0  # type: ignore[operator]


@pytest.mark.subprocess
def test_floors_script_prints_every_floor() -> None:
    lines = _script_lines("bench.floors", "--runs", "5", "--reps", "1")
    assert [line["floor"] for line in lines] == [
        "sql_seq",
        "sql_conc",
        "trio_conc",
        "engine_seq",
        "engine_conc",
        "engine_sql_seq",
    ]
    assert all(line["n"] == 5 and line["steps_per_s"] > 0 for line in lines)  # type: ignore[operator]


@pytest.mark.subprocess
def test_stall_script_prints_the_longest_gap() -> None:
    [line] = _script_lines("bench.stall", "--hold", "0.2", "--reps", "1")
    assert (line["workload"], line["hold_s"]) == ("stall", 0.2)
    assert 0 <= line["max_gap_ms"] < 200  # type: ignore[operator]


@pytest.mark.subprocess
def test_workers_script_measures_both_stores(postgres_cluster: object) -> None:
    lines = _script_lines("bench.workers", "--workers", "2", "--n", "6", "--samples", "2", "--reps", "1")
    assert [(line["store"], line["workers"], line["workload"]) for line in lines] == [
        ("sqlite", 1, "steps"),
        ("sqlite", 1, "signal"),
        ("postgres", 2, "steps"),
        ("postgres", 2, "signal"),
    ]
    assert all(line["ok"] is True for line in lines)
    assert {"runs_per_s", "steps_per_s", "wall_s"} <= set(lines[0])
    assert {"p50_ms", "p99_ms"} <= set(lines[1])
