"""``python -m bench``: every workload, each run in a fresh process on a fresh database file.

Prints one JSON line per run on stdout as it finishes, then a table of medians over the
runs of each case (markdown) on stderr. Cases run round-robin (rep 1 of every case, then rep
2, ...) so that a noisy minute on the shared machine does not land on one case only.

Examples::

    python -m bench                                # everything, 3 reps, SQLite NORMAL
    python -m bench --only steps,signal --reps 5
    python -m bench --synchronous both --only steps
    python -m bench --n 50 --reps 1                # quick look (N for every workload)
    python -m bench --store memory --only steps,sleep,signal,memory
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .case import EXIT_UNAVAILABLE, WORKLOADS

#: (workload, mode) in the order they run.
CASES: list[tuple[str, str | None]] = [
    ("steps", "seq"),
    ("steps", "conc"),
    ("sleep", None),
    ("signal", "same-process"),
    ("signal", "cross-process"),
    ("memory", None),
    ("client", None),
    ("restart", None),
]

#: The figures of each workload, in the table's order.
FIGURES = {
    "steps": ["steps_per_s", "runs_per_s", "wall_s"],
    "sleep": ["overhead_s", "runs_per_s", "start_all_s", "late_p50_ms", "late_p99_ms"],
    "signal": ["p50_ms", "p99_ms"],
    "memory": ["rss_bytes_per_run", "db_bytes_per_run"],
    "client": ["steps_per_s", "runs_per_s"],
    "restart": ["ready_s", "rss_bytes"],
}

ROOT = Path(__file__).resolve().parent.parent


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="runs of each case (default 3)")
    parser.add_argument("--n", type=int, help="N for every workload (default: each workload's own)")
    parser.add_argument("--only", help=f"comma-separated workloads among {','.join(WORKLOADS)}")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL", "both"), default="NORMAL", type=_upper_or_both)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one case may take (default 600)")
    args = parser.parse_args(argv)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = sorted(set(wanted) - set(WORKLOADS))
        if unknown:
            parser.error(f"unknown workload(s) {', '.join(unknown)}; choose among {', '.join(WORKLOADS)}")
        args.only = set(wanted)
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    return args


def _upper_or_both(value: str) -> str:
    return "both" if value.lower() == "both" else value.upper()


def _run_case(workload: str, mode: str | None, synchronous: str, args: argparse.Namespace) -> dict[str, Any] | str:
    """One run in a fresh process on a fresh directory: its JSON line, or why there is none."""
    with tempfile.TemporaryDirectory(prefix=f"tarry-bench-{workload}-") as tmp:
        argv = [sys.executable, "-m", "bench.case", workload, "--dir", tmp]
        argv += ["--store", args.store, "--synchronous", synchronous]
        if mode is not None:
            argv += ["--mode", mode]
        if args.n is not None:
            argv += ["--n", str(args.n)]
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            return f"timed out after {args.timeout:.0f} s"
    if done.returncode == EXIT_UNAVAILABLE:
        return done.stderr.strip().removeprefix("bench: ")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return f"failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr, flush=True)
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _revision() -> str:
    """The commit measured (``-dirty``: with uncommitted changes), as far as git says."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def _fmt(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _median(lines: list[dict[str, Any]], key: str) -> str:
    values = [line[key] for line in lines if line.get(key) is not None]
    return _fmt(statistics.median(values)) if values else "-"


def table(results: dict[tuple[str, str | None, str], list[dict[str, Any] | str]]) -> str:
    rows = [
        "| workload | mode | store | synchronous | n | ok | figures (medians) | limit_commits_per_s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (workload, mode, synchronous), outcomes in results.items():
        lines = [o for o in outcomes if isinstance(o, dict)]
        if not lines:
            reason = next((o for o in outcomes if isinstance(o, str)), "no result")
            rows.append(f"| {workload} | {mode or ''} | | {synchronous} | | - | {reason} | |")
            continue
        first = lines[0]
        figures = ", ".join(f"{key} {_median(lines, key)}" for key in FIGURES[workload])
        ok = f"{sum(bool(line['ok']) for line in lines)}/{len(outcomes)}"
        rows.append(
            f"| {workload} | {mode or ''} | {first['store']} | {synchronous} | {first['n']:,} | {ok} "
            f"| {figures} | {_median(lines, 'limit_commits_per_s')} |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    syncs = ["NORMAL", "FULL"] if args.synchronous == "both" else [args.synchronous]
    cases = [(w, m, s) for s in syncs for (w, m) in CASES if args.only is None or w in args.only]
    results: dict[tuple[str, str | None, str], list[dict[str, Any] | str]] = {case: [] for case in cases}
    started = time.perf_counter()
    for rep in range(args.reps):
        for workload, mode, synchronous in cases:
            if rep > 0 and all(isinstance(o, str) for o in results[(workload, mode, synchronous)]):
                continue  # unavailable or failing: once is enough
            outcome = _run_case(workload, mode, synchronous, args)
            results[(workload, mode, synchronous)].append(outcome)
            if isinstance(outcome, dict):
                print(json.dumps(outcome), flush=True)
            else:
                print(f"bench: {workload} {mode or ''} {synchronous}: {outcome}", file=sys.stderr, flush=True)
    print(
        f"\nMedians of {args.reps} run(s) each ({time.perf_counter() - started:.0f} s; "
        f"tree {_revision()}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs):\n",
        file=sys.stderr,
    )
    print(table(results), file=sys.stderr, flush=True)
    failed = any(isinstance(o, dict) and not o["ok"] for outcomes in results.values() for o in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
