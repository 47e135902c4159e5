"""Every `tarry` command is documented: help text ending with an example, and a README mention."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tarry.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
NAMES = cli.list_commands(click.Context(cli))


def test_the_commands_are_all_there() -> None:
    assert {"worker", "trigger", "signal", "runs", "show", "cancel", "retry", "dashboard"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_command_has_help_ending_with_an_example_and_is_in_the_readme(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert (command.help or "").strip(), f"tarry {name} has no help text"
    result = CliRunner().invoke(cli, [name, "--help"], prog_name="tarry")
    assert result.exit_code == 0, result.output
    text = result.output.split("Options:", 1)[0].rstrip()
    assert "Example:" in text, f"tarry {name} --help shows no example"
    assert text.splitlines()[-1].strip().startswith("tarry "), f"tarry {name} --help does not end with an example"
    assert f"tarry {name}" in README, f"README.md does not mention `tarry {name}`"


def test_the_group_help_and_every_option_are_described() -> None:
    assert "Example:" in (cli.help or "")
    for name in NAMES:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help",):
                described = param.help or param.show_default or isinstance(param.type, click.Choice)
                assert described, f"tarry {name} {param.opts[0]} has no help"
