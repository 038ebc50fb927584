"""The library speaks in its own terms and the CLI translates: no message raised or logged under
src/photoclass (outside the CLI package) names a command-line flag, and the CLI turns the API
parameters those messages name into flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import photoclass
from photoclass.cli import app
from photoclass.cli.options import translate

SRC = Path(photoclass.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _library_strings() -> list[tuple[str, int, str]]:
    """Every string literal of the library's code outside `cli/`, docstrings excepted (they
    may show command lines as examples)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                found.append((str(path.relative_to(SRC)), node.lineno, node.value))
    return found


def test_no_library_message_names_a_flag() -> None:
    offenders = [f"{path}:{line}: {text!r}" for path, line, text in _library_strings() if FLAG.search(text)]
    assert not offenders, "library strings that name CLI flags:\n" + "\n".join(offenders)


def test_the_scan_sees_library_messages() -> None:
    # The scan above must be able to fail: it reads the messages raised in training.
    texts = [text for path, _, text in _library_strings() if path.startswith("training")]
    assert any("already holds a trained model" in t for t in texts)


@pytest.mark.parametrize(
    ("message", "translated"),
    [
        ("choose another `out` or pass `overwrite=True`", "choose another --out or pass --overwrite"),
        ("`batch_size` must be in [1, 4096] (got 0)", "--batch-size must be in [1, 4096] (got 0)"),
        ('pass `precision="fp32"`', "pass --precision fp32"),
        ("set `group_by_owner=False`", "set --no-group-by-owner"),
        ("a plain message (x = 1)", "a plain message (x = 1)"),
    ],
)
def test_the_cli_turns_api_parameters_into_flags(message: str, translated: str) -> None:
    assert translate(message) == translated


def test_a_library_error_reaches_the_user_as_one_line_with_the_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", str(tmp_path), "--out", str(tmp_path / "m"), "--batch-size", "0"]
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: --batch-size must be in [1, 4096] (got 0)"], result.output


def test_every_public_name_resolves() -> None:
    for name in photoclass.__all__:
        assert getattr(photoclass, name) is not None, name
    assert len(set(photoclass.__all__)) == len(photoclass.__all__)
