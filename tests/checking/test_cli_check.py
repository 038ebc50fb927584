"""`photoclass check` on the command line: its formats, and one-line errors for mistakes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from photoclass.cli import app


@pytest.fixture
def small(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for cls, colour in (("cat", (200, 80, 40)), ("owl", (40, 80, 200))):
        for i in range(3):
            path = root / "train" / cls / f"{cls}{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (80 + 10 * i, 60), colour).save(path)
    (root / "train" / "owl" / "owl9.jpg").hardlink_to(root / "train" / "owl" / "owl0.jpg")  # a duplicate
    return root


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.mark.slow
def test_table_json_and_csv(small: Path, tmp_path: Path) -> None:
    table = invoke("check", small, "--report", tmp_path / "check.html")
    assert table.exit_code == 0, table.output
    assert (
        "Duplicates" in table.stdout and "train/owl/owl9.jpg" in table.stdout and "finding(s)" in table.stdout
    )
    assert "--fix would move" in table.output and (tmp_path / "check.html").is_file()
    data = json.loads(invoke("check", small, "--format", "json").stdout)
    duplicate = next(f for f in data["findings"] if f["kind"] == "duplicate")
    assert duplicate["path"] == "train/owl/owl9.jpg" and duplicate["other"] == "train/owl/owl0.jpg"
    assert set(data["rules"]) >= {"mislabelled", "off_topic", "leakage", "blurry", "missing_file"}
    rows = list(csv.DictReader(io.StringIO(invoke("check", small, "--format", "csv").stdout)))
    assert {"kind": "duplicate", "path": "train/owl/owl9.jpg", "confidence": "1.0"}.items() <= rows[0].items()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "{tmp}/nowhere"], "does not exist or is not a folder"),
        (["check", "{tmp}", "--model", "small-cnn"], "has no pretrained weights"),
        (["check", "{tmp}", "--min-confidence", "2"], "must be between 0 and 1"),
        (["check", "{tmp}", "--fix", "--undo"], "use one or the other"),
        (["check", "{tmp}/nowhere", "--undo"], "does not exist or is not a folder"),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run([sys.executable, "-m", "photoclass", *argv], capture_output=True, text=True)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
