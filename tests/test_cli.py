"""Every command end to end through the real CLI (Typer's runner, or a subprocess)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from photoclass.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "160"})


@pytest.mark.parametrize("name", sorted(c.name or c.callback.__name__ for c in app.registered_commands))
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = invoke(name, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_module_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "photoclass", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


def test_models_lists_the_registry() -> None:
    result = invoke("models")
    assert result.exit_code == 0
    for name in ("seed-cnn", "small-cnn", "efficientnet-lite0"):
        assert name in result.output


def test_train_then_evaluate(cats_owls_tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    config = tmp_path / "train.toml"
    config.write_text('[train]\nmodel = "small-cnn"\nimage_size = 40\nbatch_size = 16\nworkers = 0\n')
    result = invoke("train", cats_owls_tiny, "--out", out, "--config", config, "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "validation (val/): accuracy" in result.output
    meta = json.loads((out / "photoclass.json").read_text())
    assert meta["image_size"] == 40 and meta["config"]["epochs"] == 1  # file, then flag

    result = invoke("evaluate", out, cats_owls_tiny / "val")
    assert result.exit_code == 0
    assert (
        "accuracy" in result.output and "confusion matrix" in result.output and "precision" in result.output
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 20 and len(metrics["predictions"]) == 20
    assert sum(map(sum, metrics["confusion_matrix"])) == 20

    result = invoke("evaluate", out, cats_owls_tiny / "val", "--json", "--out", tmp_path / "ev")
    assert json.loads(result.stdout)["n"] == 20
    assert (tmp_path / "ev" / "metrics.json").exists()


def test_predict_formats(trained_three: Path, shapes3: Path, tmp_path: Path) -> None:
    folder = shapes3 / "test" / "circle"
    bad = tmp_path / "broken.jpg"
    bad.write_text("<html>gone</html>")
    one = folder / "circle-0.jpg"

    table = invoke("predict", trained_three, one, bad, "--top-k", "2")
    assert table.exit_code == 0
    assert "circle-0.jpg" in table.output and "unreadable" in table.output

    rows = json.loads(invoke("predict", trained_three, folder, bad, "--format", "json", "-k", "3").stdout)
    assert len(rows) == 11
    ok = [r for r in rows if r["error"] is None]
    assert len(ok) == 10 and all(len(r["top"]) == 3 for r in ok)
    assert all(abs(sum(p for _, p in r["top"]) - 1) < 1e-4 for r in ok)
    assert {r["label"] for r in ok} <= {"circle", "square", "triangle"}
    assert [r for r in rows if r["error"]][0]["path"] == str(bad)

    text = invoke("predict", trained_three, folder, bad, "--format", "csv", "--top-k", "2").stdout
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == ["path", "label", "probability", "label_2", "probability_2", "unknown", "error"]
    assert {row["unknown"] for row in parsed[:-1]} <= {"true", "false"}
    assert len(parsed) == 11 and parsed[-1]["error"].startswith("not an image")
    assert float(parsed[0]["probability"]) >= float(parsed[0]["probability_2"])


def test_predict_fails_only_when_nothing_is_readable(trained_three: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_text("nope")
    result = invoke("predict", trained_three, bad, tmp_path / "missing.jpg", "--format", "json")
    assert result.exit_code == 1
    assert [r["error"] for r in json.loads(result.stdout)] == [
        "no such file or folder",
        "not an image (unrecognised format)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{tmp}/nowhere", "--out", "{tmp}/m"], "does not exist; check the path"),
        (["train", "{data}", "--out", "{tmp}/m", "--model", "resnet"], "unknown model 'resnet'"),
        (["train", "{data}", "--out", "{tmp}/m", "--val-fraction", "2"], "val-fraction"),
        (["evaluate", "{tmp}", "{data}/val"], "is not a photoclass model"),
        (["predict", "{tmp}/cats[owls]", "x.jpg"], "cats[owls] is not a photoclass model"),  # not markup
        (["train", "{data}", "--out", "{tmp}/m", "--config", "{tmp}/none.toml"], "config file"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    cats_owls_tiny: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(tmp=tmp_path, data=cats_owls_tiny) for a in args]
    result = subprocess.run([sys.executable, "-m", "photoclass", *argv], capture_output=True, text=True)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
