"""The README stays true: every `photoclass` command line in it names a real command with real
options, and every command of the CLI is documented there. (What the commands do is tested
in the other modules; `.ci/run` runs the two set-up commands on a fresh clone.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from photoclass.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
COMMANDS = typer.main.get_command(app)


def readme_command_lines() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("photoclass ")]


@pytest.mark.parametrize("line", readme_command_lines())
def test_readme_command_lines_parse(line: str) -> None:
    command, args = COMMANDS, shlex.split(line)[1:]
    while isinstance(command, click.Group):
        assert args and args[0] in command.commands, f"unknown command in: {line}"
        command, args = command.commands[args[0]], args[1:]
    command.make_context("photoclass", args)  # raises on an unknown option or a bad value


def test_every_command_is_in_the_readme() -> None:
    text = README.read_text()
    for name in COMMANDS.commands:
        assert f"photoclass {name}" in text, name


def test_readme_set_up_commands_are_what_ci_runs() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "./run.sh demo" in README.read_text() and "./run.sh demo" in ci
    assert "./run.sh test" in README.read_text() and "./run.sh test" in ci
