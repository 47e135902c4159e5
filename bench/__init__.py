"""Benchmarks of tarry: the workloads of ``/work/shared/bench/WORKLOADS.md``, one JSON line per run.

``python -m bench`` runs every case in a fresh process on a fresh database file and prints
the lines, then a table of medians; ``python -m bench.case WORKLOAD ...`` runs one case.
Never imported by the engine or the tests' normal runs.
"""
