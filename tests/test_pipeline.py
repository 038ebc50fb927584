"""`photoclass run --simulator` and `photoclass demo`'s code path: collect -> train -> evaluate
-> report, end to end over loopback HTTP, as a user would type it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from photoclass.cli import app


def test_run_against_the_simulator(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        '[collect]\nsize = "m"\nsplit = [0.6, 0.2, 0.2]\n'
        '[train]\nmodel = "small-cnn"\nimage_size = 48\nbatch_size = 16\nworkers = 0\n'
    )
    out = tmp_path / "run"
    args = ["run", "cat", "owl", "--simulator", "--per-class", "30", "--epochs", "2", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "60 collected" in result.output and "on 12 photos" in result.output
    for split, n in (("train", 18), ("val", 6), ("test", 6)):
        assert all(len(list((out / "data" / split / c).glob("*.jpg"))) == n for c in ("cat", "owl"))
    assert (out / "data" / "manifest.sqlite").exists() and (out / "data" / "ATTRIBUTION.csv").exists()
    meta = json.loads((out / "model" / "photoclass.json").read_text())
    assert meta["architecture"] == "small-cnn" and meta["config"]["epochs"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 12
    assert "<html" in (out / "report.html").read_text()[:500].lower()
    assert "check:" in result.output and (out / "check.html").is_file()  # checked between collect and train

    # A training photo copied into test/ by hand: rerun with --clean, and check quarantines it.
    photo = sorted((out / "data" / "train" / "cat").glob("*.jpg"))[0]
    shutil.copyfile(photo, out / "data" / "test" / "cat" / "copy.jpg")
    again = CliRunner().invoke(app, [*args, "--clean", "--config", str(config)], catch_exceptions=False)
    assert again.exit_code == 0  # a finished run reruns cheaply: nothing collected or trained again
    assert json.loads((out / "model" / "photoclass.json").read_text())["history"] == meta["history"]
    assert (out / "data" / "_quarantine" / "leakage" / "test" / "cat" / "copy.jpg").is_file()
    assert "moved to" in again.output
