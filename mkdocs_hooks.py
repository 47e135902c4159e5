"""MkDocs hook: the CLI reference page, rendered from the `tarry` click group at build time.

A page that holds the line ``<!-- tarry-cli -->`` gets, in its place, the ``--help`` of
``tarry`` and of every command it lists, the ones that other packages add through the
``tarry.commands`` entry points included (mkdocs-click reads only a group's own commands).
Nothing generated is checked in, so the page cannot go stale.
"""

from __future__ import annotations

from typing import Any

import click
from click.testing import CliRunner

MARKER = "<!-- tarry-cli -->"


def _help(args: list[str]) -> str:
    from tarry.cli import cli  # imported at build time only

    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="tarry", terminal_width=100)
    if result.exit_code != 0:
        raise click.ClickException(f"tarry {' '.join(args)} --help failed: {result.output}")
    return result.output.rstrip()


def cli_reference() -> str:
    """The Markdown of the CLI reference: the group's help, then one section per command."""
    from tarry.cli import cli

    parts = ["## tarry", "", "```text", _help([]), "```"]
    for name in cli.list_commands(click.Context(cli)):
        parts += ["", f"## tarry {name}", "", "```text", _help([name]), "```"]
    return "\n".join(parts) + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
