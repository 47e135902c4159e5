"""W5 ``client``: runs triggered through ``tarry.Client`` from another process while a
worker runs them (the 3-step workflow of W1).

This process serves the database as its worker (``tarry.Worker`` with default options:
the Client's datagram wakes it, ``data_version`` is polled every 20 ms as a fallback). A
child process (``python -m bench.client trigger``) opens one ``tarry.Client``, triggers N
runs one after another (each ``trigger`` returns once the run is committed), then polls
``count_by_status()`` every 5 ms until all N have completed. Figures are the child's:
from just before its first trigger until it saw N completed runs. ``ok``: the child saw N
completed runs, and this process finds N runs, each completed with output ``[0, 1, 2]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

import tarry

from .common import Unavailable, make_store, note
from .proc import LineReader, open_child
from .steps import EXPECTED, STEPS, three_steps

DEFAULT_N = 1000
MODES = ()
TIMEOUT_S = 120


def require_client() -> None:
    """Raise :class:`Unavailable` unless ``tarry.Client`` and ``tarry.Worker`` exist."""
    missing = [name for name in ("Client", "Worker") if not hasattr(tarry, name)]
    if missing:
        raise Unavailable(f"tarry.{' and tarry.'.join(missing)} not available yet")


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    store = make_store(args)
    runtime = tarry.create_runtime([three_steps], store)
    worker = tarry.Worker(runtime)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        child = await open_child("client", "trigger", "--path", str(store.path), "--n", str(args.n))
        assert child.stdout is not None
        try:
            with trio.fail_after(TIMEOUT_S):
                report = json.loads(await LineReader(child.stdout).readline())
        finally:
            worker.stop(grace=0)
    exit_code = await child.wait()
    counts = await store.count_by_status()
    outputs = [r.output for r in await runtime.list_runs(limit=None)]
    await runtime.aclose()
    wall = report["wall_s"]
    note(f"client: {args.n} triggers took {report['trigger_s']:.3f} s, all completed at {wall:.3f} s")
    ok = (
        exit_code == 0
        and report["completed"] == args.n
        and counts == {"completed": args.n}
        and len(outputs) == args.n
        and all(o == EXPECTED for o in outputs)
    )
    return {
        "ok": ok,
        "runs_per_s": round(args.n / wall, 1),
        "steps_per_s": round(STEPS * args.n / wall, 1),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    require_client()
    if args.store != "sqlite":
        raise Unavailable("a Client needs a store another process can open (--store sqlite)")
    return trio.run(_measure, args)


# -- the triggering process ------------------------------------------------------------------


def trigger_main(path: Path, n: int) -> int:
    with tarry.Client(path, workflows=[three_steps]) as client:
        start = time.perf_counter()
        for _ in range(n):
            client.trigger(three_steps)
        triggered = time.perf_counter() - start
        deadline = start + TIMEOUT_S
        completed = 0
        while time.perf_counter() < deadline:
            completed = client.count_by_status()["completed"]
            if completed >= n:
                break
            time.sleep(0.005)
        wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "trigger_s": triggered, "completed": completed}), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("role", choices=("trigger",))
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--n", type=int, required=True)
    parsed = parser.parse_args()
    sys.exit(trigger_main(parsed.path, parsed.n))
