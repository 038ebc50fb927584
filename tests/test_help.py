"""Every command's --help shows each help text whole: no sentence broken where the source
wraps it, no words eaten as rich markup ("[collect]" is a style tag to rich)."""

from __future__ import annotations

import click
import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from photoclass.cli import app

ROOT = typer.main.get_command(app)


def commands(group: click.Group = ROOT, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        found += commands(command, (*prefix, name)) if isinstance(command, click.Group) else [(*prefix, name)]
    return found


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "photoclass")
def test_help_texts_are_shown_whole(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "Usage:" in result.output, result.output
    command: click.Command = ROOT
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    texts = [p.help for p in command.params if getattr(p, "help", None)]
    if isinstance(command, click.Group):
        short = [c.get_short_help_str(limit=1000) for c in command.commands.values()]
        assert not [s for s in short if "\n" in s], "a command's summary is one paragraph, one line"
        texts += short
    for text in texts:
        assert Text.from_markup(text).plain == text.replace("\\[", "["), f"rich markup eats part of: {text}"
