"""Crash torture: kill workers at random moments and check that nothing is lost.

    python -m bench.torture --cycles 100 --seed 7 --mode kill      # SIGKILL the worker
    python -m bench.torture --cycles 20 --mode term                # SIGTERM: a graceful drain
    python -m bench.torture --cycles 50 --mode standby             # two workers on one file
    python -m bench.torture --cycles 100 --mode sweep              # cron sweeps, no worker at all

One worker process (``tarry worker bench.torture_app``) serves a temporary SQLite file while
another process (``python -m bench.torture drive``) keeps triggering runs and sending
signals through :class:`tarry.Client`: ``--runs`` runs at once, then a few more every
second. The runs mix steps with side effects, durable sleeps of 0-2 s, waits for events with
and without timeouts, steps that fail and are retried, and runs that fail for good
(:mod:`bench.torture_app`). Each cycle kills the worker at a random moment and starts a new
one. ``--seed`` (printed) makes the plan and the kill times repeatable.

``sweep`` runs no ``tarry worker`` at all: two or three "cron" processes
(``python -m bench.torture cron``), each a plain (passive) runtime that loops
``await runtime.sweep()`` (and now and then ``resume`` of a random run) for 0.3-2 s, then
exits, as cron jobs would; one more is started whenever one ends. Each cycle SIGKILLs one
of them (the one driving runs, if one is) at a random moment, mid-sweep or mid-step. The
driver sends about half its triggers and signals through a plain passive runtime of its
own (which drives them inline when no cron process holds the file, and only stores them
when one does) and the rest through :class:`tarry.Client`.

After every kill (the worker is dead, nothing writes the journal but the driver) and at the
end (every run has ended), the harness checks:

- the database passes ``PRAGMA integrity_check``;
- every run the driver triggered exists, with its workflow and payload;
- every journal's entries are in order with no gap, and its step ids are the ones its
  workflow takes, in its order (all of them once the run has ended);
- every signal the driver sent is stored exactly once (a resend under the same dedup key
  is refused), and at the end it was consumed by its run, or is still buffered where the
  run's wait timed out first;
- every step's side effect happened at least once for each step the journal holds, and more
  than once only for a step that was running when a kill landed (``kill``, ``standby``) or
  never (``term``: the drain lets steps finish);
- at the end, every run ended as its workflow says (status and output);
- ``standby``: the side effects of one worker process never interleave with another's:
  one worker is active at a time;
- ``sweep``: every cron process that ended by itself exited 0 (or, counted apart, on a
  ``LeaseLost`` after a stall past the lease's ttl).

It prints one JSON line of figures (``"workload": "torture"``) and every violation it found
on stderr, and exits 1 if there was one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import trio

from .proc import ROOT
from .torture_app import expected_steps

__all__ = ["main"]

MODES = ("kill", "term", "standby", "sweep")
LEASE_LOST = 75  # a cron process's exit code when its lease was lost (it stalled past the ttl)
ENDED = ("completed", "failed", "cancelled")


# -- the plan -----------------------------------------------------------------------------------


def plan_run(rng: random.Random, index: int) -> dict[str, Any]:
    """One run: its id, workflow, payload and (for waits) the signal the driver sends."""
    run_id = f"run-{index:05d}"
    timing = {"before": round(rng.uniform(0, 0.03), 3), "after": round(rng.uniform(0, 0.03), 3)}
    kind = rng.choices(["t-chain", "t-approval", "t-deadline", "t-flaky", "t-doomed"], [4, 2, 2, 1, 1])[0]
    run: dict[str, Any] = {"run_id": run_id, "workflow": kind, "signal": None}
    if kind == "t-chain":
        run["payload"] = {"n": rng.randint(1, 4), "nap": round(rng.uniform(0, 2), 2), **timing}
    elif kind == "t-approval":
        run["payload"] = timing
        run["signal"] = {"event": "approve", "after": round(rng.uniform(0, 3), 2), "payload": {"by": f"u{index}"}}
    elif kind == "t-deadline":
        run["payload"] = {"timeout": round(rng.uniform(0.2, 2), 2), **timing}
        if rng.random() < 0.7:  # sometimes before the timeout, sometimes after, sometimes never
            run["signal"] = {"event": "answer", "after": round(rng.uniform(0, 3), 2), "payload": {"n": index}}
    elif kind == "t-flaky":
        run["payload"] = {"failures": 2, **timing}
    else:
        run["payload"] = timing
    return run


# -- the driver process ---------------------------------------------------------------------------


def drive(db: Path, directory: Path, seed: int, runs: int, rate: float, mode: str) -> int:
    """Trigger ``runs`` runs, then ``rate`` a second until ``directory/stop`` exists; send
    each run's signal when due (and once more under the same dedup key, which must be
    refused). Every acknowledged call is appended to ``directory/ledger.jsonl``. In
    ``sweep`` mode about half the calls go through a plain passive runtime, the rest
    through :class:`tarry.Client`."""
    return trio.run(_drive, db, directory, seed, runs, rate, mode)


async def _drive(db: Path, directory: Path, seed: int, runs: int, rate: float, mode: str) -> int:
    from tarry import Client, RunFinished, SQLiteStore, create_runtime

    from .torture_app import WORKFLOWS

    rng = random.Random(seed)
    route = random.Random(seed + 1)  # apart from rng: the plan of a seed is the same in every mode
    by_id = {w.id: w for w in WORKFLOWS}
    ledger = (directory / "ledger.jsonl").open("a")
    due: list[tuple[float, dict[str, Any]]] = []
    index = 0
    next_trigger = time.monotonic()
    runtime = create_runtime(workflows=WORKFLOWS, store=SQLiteStore(db)) if mode == "sweep" else None
    pending = 0  # calls of the passive runtime under way: each drives its run inline, so they overlap

    def passive() -> bool:
        return runtime is not None and route.random() < 0.5

    async def trigger(run: dict[str, Any]) -> None:
        nonlocal pending
        if runtime is not None and passive():  # drives the run inline unless a cron job holds the file
            pending += 1
            try:
                await runtime.trigger(by_id[run["workflow"]], run["payload"], run_id=run["run_id"])
            finally:
                pending -= 1
        else:
            client.trigger(by_id[run["workflow"]], run["payload"], run_id=run["run_id"])
        ledger.write(json.dumps({"op": "trigger", **run}) + "\n")
        if run["signal"]:
            due.append((time.monotonic() + run["signal"]["after"], run))

    async def send(run: dict[str, Any]) -> None:
        nonlocal pending
        sig = run["signal"]
        key = f"{run['run_id']}:{sig['event']}"
        sent = []
        pending += 1
        try:
            for _ in range(2):  # the second, under the same dedup key, must be refused
                if runtime is not None and passive():
                    sent.append(await runtime.signal(run["run_id"], sig["event"], sig["payload"], dedup_key=key))
                else:
                    sent.append(client.signal(run["run_id"], sig["event"], sig["payload"], dedup_key=key))
            outcome = "sent" if sent == [True, False] else f"new={sent[0]} again={sent[1]}"
        except RunFinished:
            outcome = "finished"  # the run's wait timed out and it ended first
        finally:
            pending -= 1
        ledger.write(json.dumps({"op": "signal", "run_id": run["run_id"], "key": key, "outcome": outcome}) + "\n")

    with Client(db) as client:
        async with trio.open_nursery() as nursery:
            while True:
                now = time.monotonic()
                stopping = (directory / "stop").exists()
                if not stopping and (index < runs or now >= next_trigger):
                    run = plan_run(rng, index)
                    index += 1
                    nursery.start_soon(trigger, run)
                    if index >= runs:
                        next_trigger = now + 1 / rate
                    await trio.lowlevel.checkpoint()
                    continue
                due.sort(key=lambda d: d[0])
                while due and (due[0][0] <= now or stopping):
                    _, run = due.pop(0)
                    nursery.start_soon(send, run)
                ledger.flush()
                if stopping and not due and not pending:
                    break
                await trio.sleep(0.01)
    if runtime is not None:
        await runtime.aclose()
    ledger.close()
    return 0


def ledger_run_ids(directory: Path) -> list[str]:
    """The ids of the runs the driver has triggered so far."""
    path = directory / "ledger.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["run_id"] for line in lines if line.endswith("}") and '"op": "trigger"' in line]


# -- a cron process (sweep mode) ----------------------------------------------------------------


def cron(db: Path, directory: Path, seed: int, lifetime: float, lease_ttl: float) -> int:
    """A cron job: a plain runtime that sweeps ``db`` every 20 ms (and now and then resumes a
    random run) for ``lifetime`` seconds, then exits."""
    from tarry import LeaseLost

    try:
        trio.run(_cron, db, directory, seed, lifetime, lease_ttl)
    except LeaseLost as e:  # it stalled past the ttl and another process took the file over
        print(f"cron: {e!r}", file=sys.stderr)
        return LEASE_LOST
    return 0


async def _cron(db: Path, directory: Path, seed: int, lifetime: float, lease_ttl: float) -> None:
    from tarry import SQLiteStore, create_runtime

    from .torture_app import WORKFLOWS

    rng = random.Random(seed)
    store = SQLiteStore(db)
    store.lease_ttl = lease_ttl  # the seat's lease: a killed cron job's hold expires after it
    runtime = create_runtime(workflows=WORKFLOWS, store=store)
    until = time.monotonic() + lifetime
    try:
        while time.monotonic() < until:
            await runtime.sweep()
            if rng.random() < 0.2 and (run_ids := ledger_run_ids(directory)):
                await runtime.resume(rng.choice(run_ids))
            await trio.sleep(0.02)
    finally:
        await runtime.aclose()


# -- processes ------------------------------------------------------------------------------------


class Workers:
    """The processes that drive runs in one torture run: ``tarry worker`` processes, or in
    ``sweep`` mode cron processes (plain runtimes that sweep for a while and exit)."""

    def __init__(self, db: Path, directory: Path, lease_ttl: float, mode: str = "kill", seed: int = 0) -> None:
        self.db = db
        self.directory = directory
        self.lease_ttl = lease_ttl
        self.mode = mode
        self.rng = random.Random(seed + 2)  # apart from the harness's: its kill times stay as they were
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.lease_lost = 0  # cron processes that ended on a LeaseLost

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.directory / f"worker-{self.started}.log").open("wb")
        env = {**os.environ, "TARRY_TORTURE_DIR": str(self.directory), "PYTHONPATH": str(ROOT)}
        if self.mode == "sweep":
            lifetime = round(self.rng.uniform(0.3, 2.0), 2)
            argv = ["-m", "bench.torture", "cron", str(self.db), str(self.directory),
                    str(self.rng.randrange(1 << 31)), str(lifetime), str(self.lease_ttl)]  # fmt: skip
        else:
            argv = ["-m", "tarry.cli", "--db", str(self.db), "worker", "bench.torture_app:WORKFLOWS",
                    "--lease-ttl", str(self.lease_ttl), "--grace", "10", "--log-level", "warning"]  # fmt: skip
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def top_up(self) -> list[str]:
        """``sweep``: reap the cron processes that ended by themselves and start new ones so
        that two or three run. Returns what went wrong (a cron process that failed)."""
        if self.mode != "sweep":
            return []
        problems = []
        for proc in [p for p in self.procs if p.poll() is not None]:
            self.procs.remove(proc)
            if proc.returncode == LEASE_LOST:
                self.lease_lost += 1
            elif proc.returncode != 0:
                problems.append(f"cron process {proc.pid} exited {proc.returncode}: see {self.directory}/worker-*.log")
        while len(self.procs) < 2 or (len(self.procs) < 3 and self.rng.random() < 0.3):
            self.start()
        return problems

    def wait_serving(self, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
        """Wait until ``proc`` holds the file's lease. On a loaded machine a worker can take
        seconds to start; a kill before then finds no database, and a SIGTERM before its
        handler is in place ends it as a plain SIGTERM would."""
        until = time.monotonic() + timeout
        while time.monotonic() < until and proc.poll() is None:
            if self.db.exists():
                with _connect(self.db) as conn:
                    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                    owners = (
                        [r[0] for r in conn.execute("SELECT owner FROM tarry_leases")]
                        if "tarry_leases" in tables
                        else []
                    )
                if any((owner or "").split(":")[1:2] == [str(proc.pid)] for owner in owners):
                    return
            time.sleep(0.05)

    def wait_created(self, timeout: float = 60.0) -> None:
        """Wait until the database holds its tables (cron processes and the driver create it)."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.db.exists():
                with _connect(self.db) as conn:
                    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tarry_leases'").fetchone():
                        return
            time.sleep(0.05)

    def active(self) -> subprocess.Popen[bytes] | None:
        """The live worker that holds the file's lease (the only one, outside ``standby``)."""
        live = [p for p in self.procs if p.poll() is None]
        if len(live) <= 1:
            return live[0] if live else None
        with _connect(self.db) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            owners = [r[0] for r in conn.execute("SELECT owner FROM tarry_leases")] if "tarry_leases" in tables else []
        for p in live:
            if any((owner or "").split(":")[1:2] == [str(p.pid)] for owner in owners):  # host:pid:token
                return p
        return None

    def stop(self, proc: subprocess.Popen[bytes], how: str) -> int:
        proc.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
        code = proc.wait(timeout=60)
        self.procs.remove(proc)
        return code

    def stop_all(self) -> None:
        for proc in list(self.procs):
            if self.mode == "sweep":  # a cron process ends by itself within 2 s
                proc.wait(timeout=60)
            else:
                self.stop(proc, "term")


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


# -- the invariants -------------------------------------------------------------------------------


class Checker:
    """What the harness knows happened, and the invariants it holds the database to."""

    def __init__(self, db: Path, directory: Path, mode: str) -> None:
        self.db = db
        self.directory = directory
        self.mode = mode
        # Steps running at a kill, kept beside the database so a later checker knows too.
        self.in_flight: Counter[tuple[str, str]] = Counter()
        saved = directory / "in_flight.json"
        if saved.exists():
            self.in_flight.update({(r, s): n for r, s, n in json.loads(saved.read_text())})
        self.violations: list[str] = []

    def ledger(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        runs: dict[str, dict[str, Any]] = {}
        signals: dict[str, dict[str, Any]] = {}
        path = self.directory / "ledger.jsonl"
        for line in path.read_text().splitlines() if path.exists() else ():
            if not line.endswith("}"):
                continue  # the driver is writing it
            item = json.loads(line)
            (runs if item["op"] == "trigger" else signals)[item["run_id"]] = item
        return runs, signals

    def effects(self) -> list[tuple[str, str, str]]:
        path = self.directory / "effects.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [tuple(line.split(" ")) for line in lines]  # type: ignore[misc]

    def fail(self, message: str) -> None:
        self.violations.append(message)

    def after_kill(self, pid: int | None = None) -> None:
        """Steps whose side effect happened (in process ``pid``, the one killed, if given)
        but whose result is not in the journal were running when the kill landed: the
        next worker runs them again."""
        with _connect(self.db) as conn:
            done = {
                (r[0], r[1]) for r in conn.execute("SELECT run_id, step_id FROM entries WHERE status = 'completed'")
            }
        effects = self.effects()
        ran = {(run_id, step_id) for p, run_id, step_id in effects if pid is None or p == str(pid)}
        for key in ran - done:
            self.in_flight[key] += 1
        saved = [[run_id, step_id, n] for (run_id, step_id), n in sorted(self.in_flight.items())]
        (self.directory / "in_flight.json").write_text(json.dumps(saved))

    def check(self, *, final: bool) -> dict[str, int]:
        runs, signals = self.ledger()
        with _connect(self.db) as conn:
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if integrity != "ok":
                self.fail(f"PRAGMA integrity_check: {integrity}")
            rows = {r["run_id"]: r for r in conn.execute("SELECT * FROM runs")}
            journal: dict[str, list[sqlite3.Row]] = defaultdict(list)
            for e in conn.execute("SELECT * FROM entries ORDER BY run_id, seq"):
                journal[e["run_id"]].append(e)
            stored: dict[str, list[sqlite3.Row]] = defaultdict(list)
            signalled: set[str] = set()
            for s in conn.execute("SELECT * FROM signals WHERE dedup_key IS NOT NULL"):
                stored[s["dedup_key"]].append(s)
                signalled.add(s["run_id"])
        for run_id, run in runs.items():
            row = rows.get(run_id)
            if row is None:
                self.fail(f"run {run_id}: triggered and acknowledged, but not in the database")
                continue
            if row["workflow_id"] != run["workflow"] or json.loads(row["payload"]) != run["payload"]:
                self.fail(f"run {run_id}: stored as {row['workflow_id']} {row['payload']}, triggered as {run}")
            self._check_journal(run_id, run, row, journal.get(run_id, []), final=final)
            sent = signals.get(run_id)
            if sent is not None:
                self._check_signal(run_id, run, row, sent, stored.get(sent["key"], []), final=final)
            elif run["signal"] is None and run_id in signalled:
                self.fail(f"run {run_id}: a signal is stored that nobody sent")
        effects = self._check_effects(journal, final=final)
        return {"runs": len(runs), "signals": sum(1 for s in signals.values() if s["outcome"] == "sent"), **effects}

    def _check_journal(
        self, run_id: str, run: dict[str, Any], row: sqlite3.Row, entries: list[sqlite3.Row], *, final: bool
    ) -> None:
        seqs = [e["seq"] for e in entries]
        if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            self.fail(f"run {run_id}: journal seqs {seqs} have a gap or are out of order")
        ids = [e["step_id"] for e in entries]
        want = expected_steps(run["workflow"], run["payload"])
        if ids != want[: len(ids)]:
            self.fail(f"run {run_id}: journal holds {ids}, its workflow takes {want}")
        if not final:
            return
        if row["status"] not in ENDED:
            self.fail(f"run {run_id}: still {row['status']} at the end")
            return
        if ids != want:
            self.fail(f"run {run_id}: ended with journal {ids}, its workflow takes {want}")
        status, expected = self._outcome(run)
        output = json.loads(row["output"]) if row["output"] else None
        if row["status"] != status:
            self.fail(f"run {run_id}: ended {row['status']}, its workflow ends {status} ({row['error']})")
        elif status == "completed" and expected is not _ANY and output != expected:
            self.fail(f"run {run_id}: returned {output!r}, its workflow returns {expected!r}")
        elif status == "failed" and "never succeeds" not in (row["error"] or ""):
            self.fail(f"run {run_id}: failed with {row['error']}, not the step's own error")

    def _outcome(self, run: dict[str, Any]) -> tuple[str, Any]:
        p = run["payload"]
        match run["workflow"]:
            case "t-chain":
                return "completed", [f"s{i}" for i in range(p["n"])]
            case "t-approval":
                return "completed", run["signal"]["payload"]
            case "t-deadline":
                return "completed", _ANY  # the signal's payload or None: see _check_signal
            case "t-flaky":
                return "completed", "ok"
            case _:
                return "failed", None

    def _check_signal(
        self,
        run_id: str,
        run: dict[str, Any],
        row: sqlite3.Row,
        sent: dict[str, Any],
        rows: list[sqlite3.Row],
        *,
        final: bool,
    ) -> None:
        outcome = sent["outcome"]
        if outcome == "finished":
            if rows:
                self.fail(f"run {run_id}: a signal refused as RunFinished was stored anyway")
            return
        if outcome != "sent":
            self.fail(f"run {run_id}: signal under dedup key {sent['key']}: {outcome} (want new once, then refused)")
        if len(rows) != 1:
            self.fail(f"run {run_id}: the signal sent once is stored {len(rows)} times")
            return
        if not final or row["status"] not in ENDED:
            return
        consumed = rows[0]["consumed_at"] is not None
        output = json.loads(row["output"]) if row["output"] else None
        if run["workflow"] == "t-approval" and not consumed:
            self.fail(f"run {run_id}: completed without consuming its approval")
        if run["workflow"] == "t-deadline":
            if consumed and output != run["signal"]["payload"]:
                self.fail(f"run {run_id}: consumed {rows[0]['payload']} but returned {output!r}")
            if not consumed and output is not None:
                self.fail(f"run {run_id}: returned {output!r} with its signal still buffered")

    def _check_effects(self, journal: dict[str, list[sqlite3.Row]], *, final: bool) -> dict[str, int]:
        effects = self.effects()
        counts = Counter((run_id, step_id) for _, run_id, step_id in effects)
        duplicated = 0
        for key, n in counts.items():
            if n == 1:
                continue
            duplicated += 1
            allowed = 0 if self.mode == "term" else self.in_flight[key]
            if n > 1 + allowed:
                self.fail(f"run {key[0]}, step {key[1]}: side effect ran {n} times, in flight at {allowed} kills")
        if final:
            for run_id, entries in journal.items():
                for e in entries:
                    if e["kind"] == "step" and e["status"] == "completed" and counts[(run_id, e["step_id"])] == 0:
                        self.fail(
                            f"run {run_id}, step {e['step_id']}: journaled as completed, its side effect never ran"
                        )
        if self.mode == "standby":
            order = [pid for pid, _, _ in effects]
            seen: set[str] = set()
            for prev, pid in itertools.pairwise(order):
                if pid != prev:
                    if pid in seen:
                        self.fail(f"worker {pid} ran steps again after worker {prev} had: two active at once")
                        break
                    seen.add(prev)
        return {"effects": len(effects), "effects_duplicated": duplicated}


_ANY = object()


# -- the harness ----------------------------------------------------------------------------------


def torture(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    directory = Path(args.dir or tempfile.mkdtemp(prefix="tarry-torture-"))
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "torture.db"
    print(f"torture: mode {args.mode}, seed {args.seed}, {args.cycles} cycles, in {directory}", file=sys.stderr)
    started = time.monotonic()
    workers = Workers(db, directory, args.lease_ttl, args.mode, args.seed)
    checker = Checker(db, directory, args.mode)
    if args.mode == "sweep":
        workers.top_up()
        workers.wait_created()
    else:
        workers.wait_serving(workers.start())
    if args.mode == "standby":
        time.sleep(0.5)
        workers.start()
    driver = subprocess.Popen(
        [sys.executable, "-m", "bench.torture", "drive", str(db), str(directory), str(args.seed), str(args.runs),
         str(args.rate), args.mode],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "TARRY_TORTURE_DIR": str(directory)},
    )  # fmt: skip
    kills = 0
    try:
        for cycle in range(1, args.cycles + 1):
            until = time.monotonic() + rng.uniform(args.min_wait, args.max_wait)
            while (left := until - time.monotonic()) > 0:
                for problem in workers.top_up():
                    checker.fail(f"cycle {cycle}: {problem}")
                time.sleep(min(left, 0.05 if args.mode == "sweep" else left))
            live = [p for p in workers.procs if p.poll() is None] or [workers.start()]
            victim = workers.active() or (rng.choice(live) if args.mode == "sweep" else workers.procs[0])
            code = workers.stop(victim, "term" if args.mode == "term" else "kill")
            kills += 1
            if args.mode == "term" and code != 0:
                checker.fail(f"cycle {cycle}: a worker drained on SIGTERM exited {code}")
            # Nothing drives runs now: the standby (if any) waits out the lease first.
            checker.after_kill(victim.pid)
            figures = checker.check(final=False)
            if args.verbose:
                print(json.dumps({"cycle": cycle, **figures, "violations": len(checker.violations)}), file=sys.stderr)
            started_worker = workers.start()
            if args.mode == "sweep":
                workers.top_up()
            if args.mode == "term":  # a drain is tested on a worker that serves, not one starting up
                workers.wait_serving(started_worker)
        (directory / "stop").touch()
        if driver.wait(timeout=120) != 0:
            checker.fail(f"the driver exited {driver.returncode}")
        deadline = time.monotonic() + args.settle
        runs, _ = checker.ledger()
        while time.monotonic() < deadline:
            with _connect(db) as conn:
                ended = conn.execute(
                    f"SELECT count(*) FROM runs WHERE status IN ({','.join('?' * len(ENDED))})", ENDED
                ).fetchone()[0]
            if ended >= len(runs):
                break
            for problem in workers.top_up():
                checker.fail(f"settling: {problem}")
            time.sleep(0.2)
        workers.stop_all()
        for problem in workers.top_up() if args.mode == "sweep" else ():
            checker.fail(f"at the end: {problem}")
        figures = checker.check(final=True)
    finally:
        for proc in workers.procs:
            proc.kill()
        if driver.poll() is None:
            driver.kill()
    return {
        "workload": "torture",
        "mode": args.mode,
        "seed": args.seed,
        "cycles": args.cycles,
        "kills": kills,
        "workers_started": workers.started,
        **({"cron_lease_lost": workers.lease_lost} if args.mode == "sweep" else {}),
        **figures,
        "steps_in_flight_at_kills": sum(checker.in_flight.values()),
        "violations": len(checker.violations),
        "wall_s": round(time.monotonic() - started, 1),
        "dir": str(directory),
        "_violations": checker.violations,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["drive"]:
        db, directory, seed, runs, rate, mode = argv[1:7]
        return drive(Path(db), Path(directory), int(seed), int(runs), float(rate), mode)
    if argv[:1] == ["cron"]:
        db, directory, seed, lifetime, lease_ttl = argv[1:6]
        return cron(Path(db), Path(directory), int(seed), float(lifetime), float(lease_ttl))
    parser = argparse.ArgumentParser(prog="python -m bench.torture", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100, help="kills (default: 100)")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--mode", choices=MODES, default="kill")
    parser.add_argument("--runs", type=int, default=200, help="runs triggered at once at the start (default: 200)")
    parser.add_argument("--rate", type=float, default=5.0, help="runs triggered a second after that (default: 5)")
    parser.add_argument("--min-wait", type=float, default=0.3, help="seconds a worker lives at least (default: 0.3)")
    parser.add_argument("--max-wait", type=float, default=2.0, help="... and at most (default: 2)")
    parser.add_argument("--lease-ttl", type=float, default=1.0, help="the workers' --lease-ttl (default: 1)")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds the last worker gets to end every run")
    parser.add_argument("--dir", help="work in this directory (default: a new temporary one, kept)")
    parser.add_argument("--verbose", action="store_true", help="a JSON line of figures per cycle on stderr")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    result = torture(args)
    violations = result.pop("_violations")
    print(json.dumps(result), flush=True)
    for v in violations[:50]:
        print(f"violation: {v}", file=sys.stderr)
    if len(violations) > 50:
        print(f"... and {len(violations) - 50} more", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
