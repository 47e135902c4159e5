"""One benchmark case in this process: ``python -m bench.case WORKLOAD [options]``.

Prints one JSON line (the common keys, the workload's figures, and the commit-rate limit
measured afterwards in this process on the same directory). Exit status 0 when the line was
printed (even with ``"ok": false``), 3 when the case cannot run here yet (the reason goes to
stderr and no line is printed), 2 on bad arguments.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .common import Unavailable, case_parser, common_keys, emit, limit_commits_per_s, note

#: workload name -> module; each module has DEFAULT_N, MODES, measure(args) -> dict.
WORKLOADS = {
    "steps": "bench.steps",
    "sleep": "bench.sleep",
    "signal": "bench.signal",
    "memory": "bench.memory",
    "client": "bench.client",
    "restart": "bench.restart",
}

EXIT_UNAVAILABLE = 3


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in WORKLOADS:
        note(f"usage: python -m bench.case {{{','.join(WORKLOADS)}}} [options]")
        return 2
    workload = argv[0]
    module: Any = importlib.import_module(WORKLOADS[workload])
    parser = case_parser(workload, module.DEFAULT_N, module.MODES)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        figures = module.measure(args)
    except Unavailable as exc:
        note(f"skipped: {exc}")
        return EXIT_UNAVAILABLE
    line = common_keys(args, workload, mode=args.mode if module.MODES else None)
    line["ok"] = bool(figures.pop("ok"))
    line.update(figures)
    line["limit_commits_per_s"] = limit_commits_per_s(args.dir, args.synchronous)
    emit(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
