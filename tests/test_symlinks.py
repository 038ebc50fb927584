"""Symbolic links in data folders: a link leading outside the folder being read is not followed
unless `follow_symlinks=True` (`--follow-symlinks`), and a link loop does not hang a scan."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import photoclass
from photoclass.cli import app
from photoclass.data.folder import scan_dataset, scan_split
from photoclass.errors import DatasetError
from photoclass.prediction.predict import expand_inputs

from .conftest import shapes_dataset


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside every data folder of the test."""
    return touch(tmp_path / "elsewhere" / "secret.jpg")


def test_links_leading_outside_are_skipped_unless_followed(
    tmp_path: Path, secret: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    for cls in ("cat", "owl"):
        touch(data / "train" / cls / "a.jpg")
    (data / "train" / "cat" / "leak.jpg").symlink_to(secret)
    (data / "train" / "owl" / "inside.jpg").symlink_to(data / "train" / "cat" / "a.jpg")  # stays in
    (data / "train" / "owl" / "dir").symlink_to(secret.parent, target_is_directory=True)

    with caplog.at_level(logging.WARNING, logger="photoclass"):
        names = sorted(s.path.name for s in scan_dataset(data).train)
    assert names == ["a.jpg", "a.jpg", "inside.jpg"]
    assert "skipped 2 symbolic link(s) leading outside" in caplog.text
    assert "`follow_symlinks=True`" in caplog.text

    followed = sorted(s.path.name for s in scan_dataset(data, follow_symlinks=True).train)
    assert followed == ["a.jpg", "a.jpg", "inside.jpg", "leak.jpg", "secret.jpg"]


def test_a_class_or_split_that_is_a_link_outside_is_refused_with_the_fix(
    tmp_path: Path, secret: Path
) -> None:
    data = tmp_path / "data"
    touch(data / "train" / "cat" / "a.jpg")
    (data / "train" / "owl").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(
        DatasetError,
        match=r"class folders to learn from \(only cat\) \(1 symbolic link\(s\) in it lead outside",
    ):
        scan_dataset(data)
    assert scan_dataset(data, follow_symlinks=True).classes == ["cat", "owl"]

    (data / "train" / "owl").unlink()
    touch(data / "train" / "owl" / "b.jpg").unlink()
    (data / "train" / "owl" / "leak.jpg").symlink_to(secret)
    with pytest.raises(DatasetError, match=r"holds no files \(1 symbolic link\(s\) in it lead outside"):
        scan_dataset(data)

    touch(data / "train" / "owl" / "b.jpg")
    other = tmp_path / "other"
    for cls in ("cat", "owl"):
        touch(other / cls / "c.jpg")
    (data / "val").symlink_to(other, target_is_directory=True)
    with pytest.raises(
        DatasetError, match=r"val is a symbolic link to .*other, outside .*`follow_symlinks=True`"
    ):
        scan_dataset(data)
    assert len(scan_dataset(data, follow_symlinks=True).val) == 2
    assert len(scan_split(data / "val", ["cat", "owl"])) == 2  # named directly: read


def test_a_link_loop_does_not_hang_a_scan(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for cls in ("cat", "owl"):
        touch(data / "train" / cls / "a.jpg")
    (data / "train" / "cat" / "loop").symlink_to(data / "train" / "cat", target_is_directory=True)
    (data / "train" / "owl" / "up").symlink_to(data, target_is_directory=True)
    (data / "train" / "owl" / "self.jpg").symlink_to(data / "train" / "owl" / "self.jpg")  # ELOOP
    (data / "train" / "owl" / "a").symlink_to(data / "train" / "owl" / "b")
    (data / "train" / "owl" / "b").symlink_to(data / "train" / "owl" / "a")
    # In a child process with a deadline: a hang fails the test instead of stalling the suite.
    code = (
        "import sys; from photoclass.data.folder import scan_dataset; "
        "print(sorted(str(s.path) for s in scan_dataset(sys.argv[1], follow_symlinks=True).train)); "
        "print(sorted(str(s.path) for s in scan_dataset(sys.argv[1]).train))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data)], capture_output=True, text=True, timeout=60, check=True
    )
    followed, default = (eval(line) for line in done.stdout.splitlines())  # noqa: S307 (our own output)
    assert default == followed  # every link stays inside
    # Each folder is entered once per class: `loop` adds nothing, `up` adds cat's photo once.
    assert [str(Path(p).relative_to(data)) for p in default] == [
        "train/cat/a.jpg",
        "train/owl/a.jpg",
        "train/owl/up/train/cat/a.jpg",
    ]


def test_predict_does_not_follow_links_out_of_a_folder(tmp_path: Path, secret: Path) -> None:
    photos = tmp_path / "photos"
    touch(photos / "own.jpg")
    (photos / "leak.jpg").symlink_to(secret)
    (photos / "notes.txt").symlink_to(secret)  # not a photo: no row either way
    (photos / "more").symlink_to(secret.parent, target_is_directory=True)
    (photos / "loop").symlink_to(photos, target_is_directory=True)
    files, errors = expand_inputs([photos])
    assert files == [photos / "own.jpg"]
    assert sorted(Path(e.path).name for e in errors) == ["leak.jpg", "more"]
    assert all("`follow_symlinks=True`" in e.error for e in errors)
    files, errors = expand_inputs([photos], follow_symlinks=True)
    assert sorted(p.name for p in files) == ["leak.jpg", "own.jpg", "secret.jpg"] and not errors
    assert expand_inputs([photos / "leak.jpg"]) == ([photos / "leak.jpg"], [])  # named directly


@pytest.mark.slow
def test_the_cli_follows_links_only_when_asked(tmp_path: Path) -> None:
    real = shapes_dataset(tmp_path / "real", ("circle", "square"), {"train": 12, "val": 6})
    linked = tmp_path / "linked"
    for photo in real.rglob("*.jpg"):
        target = linked / photo.relative_to(real)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(photo)
    runner = CliRunner()
    tiny = ["--model", "small-cnn", "--image-size", "48", "--epochs", "1", "--workers", "0"]

    refused = runner.invoke(app, ["train", str(linked), "--out", str(tmp_path / "m"), *tiny])
    assert refused.exit_code == 1 and "holds no files" in refused.output
    assert "follow_symlinks" in refused.output or "follow-symlinks" in refused.output
    trained = runner.invoke(
        app, ["train", str(linked), "--out", str(tmp_path / "m"), "--follow-symlinks", *tiny]
    )
    assert trained.exit_code == 0, trained.output

    refused = runner.invoke(app, ["evaluate", str(tmp_path / "m"), str(linked / "val")])
    assert refused.exit_code == 1 and "holds no files" in refused.output
    ok = runner.invoke(app, ["evaluate", str(tmp_path / "m"), str(linked / "val"), "--follow-symlinks"])
    assert ok.exit_code == 0, ok.output

    refused = runner.invoke(app, ["predict", str(tmp_path / "m"), str(linked / "val"), "--format", "csv"])
    assert refused.exit_code == 1 and "not followed" in refused.output
    ok = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(linked / "val"), "-f", "csv", "--follow-symlinks"]
    )
    assert ok.exit_code == 0 and ok.output.count("circle-") == 6


def test_the_api_takes_follow_symlinks(trained_three: Path, shapes3: Path, tmp_path: Path) -> None:
    linked = tmp_path / "test"
    shutil.copytree(shapes3 / "test", linked, copy_function=lambda src, dst: os.symlink(src, dst))
    with pytest.raises(DatasetError, match="holds no files"):
        photoclass.evaluate(trained_three, linked, progress=False)
    assert photoclass.evaluate(trained_three, linked, follow_symlinks=True, progress=False).metrics["n"] == 30
    rows = photoclass.predict(trained_three, [linked])
    assert len(rows) == 30 and all(r.error and "not followed" in r.error for r in rows)
    assert all(r.error is None for r in photoclass.predict(trained_three, [linked], follow_symlinks=True))
