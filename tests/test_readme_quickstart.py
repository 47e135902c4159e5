"""The README's quickstart runs exactly as printed: its file, its commands, their output.

The Python block of the "## Quickstart" section is saved as the file the text names, and
each `$ command` of its console block runs in a shell in a fresh directory, as a user would
(`python` and `tarry` from this interpreter's environment). What a command prints must be the
lines the README shows under it; only run ids, timestamps and "... ago" differ from run to
run, and column padding with the terminal's width.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.subprocess


def quickstart() -> str:
    text = README.read_text()
    assert "\n## Quickstart\n" in text, "README.md has no '## Quickstart' section"
    return text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]


def blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", section, flags=re.S | re.M)


def commands(console: str) -> list[tuple[str, list[str]]]:
    """The `$ command` lines of a console block, each with the output lines shown under it."""
    steps: list[tuple[str, list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command in the quickstart: {line!r}"
            steps[-1][1].append(line)
    return steps


def normal(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        line = re.sub(r"\b[0-9a-f]{32}\b", "<run id>", line)
        line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", "<time>", line)
        line = re.sub(r"(\d+(ms|s|m|h|d) )+ago", "<ago>", line)
        out.append(" ".join(line.split()))
    return [line for line in out if line]


def test_the_quickstart_runs_as_printed(tmp_path: Path) -> None:
    section = quickstart()
    (python,) = blocks(section, "python")
    (console,) = blocks(section, "console")
    name = re.search(r"Save this as `([\w.]+)`", section)
    assert name is not None, "the quickstart does not say which file to save its code in"
    (tmp_path / name.group(1)).write_text(python)

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("TARRY_DB", None)
    steps = commands(console)
    assert [command.split()[0] for command, _ in steps] == ["python", "tarry"]
    for command, shown in steps:
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
        assert normal(done.stdout.splitlines()) == normal(shown), f"{command!r} printed:\n{done.stdout}"


def test_the_output_check_catches_a_difference() -> None:
    assert normal(["result: {'stars': 5}"]) != normal(["result: {'stars': 4}"])
    assert normal(["01a252d8b91c7edb94a144a64b1a6673  welcome  2026-12-07 23:31:04Z  1m 41s ago"]) == normal(
        ["0123456789abcdef0123456789abcdef welcome 2027-01-01 00:00:00Z 2s ago"]
    )
