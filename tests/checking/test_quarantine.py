"""`check --fix` moves flagged photos into DATA/_quarantine/ and `check --undo` puts them back,
byte for byte; an interrupted fix and a taken place are handled."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from photoclass.checking import quarantine
from photoclass.checking.findings import Finding
from photoclass.cli import app
from photoclass.sim.noise import inject

from ..conftest import cats_owls_sample


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under `root`: a link's target, a file's SHA-256, a folder's name."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[key] = "link " + os.readlink(path)
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "folder"
    return state


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.mark.slow
def test_fix_then_undo_restores_the_folder_byte_for_byte(tmp_path: Path, shared_data: Path) -> None:
    root = cats_owls_sample(tmp_path / "data", {"train": 20, "val": 6}, seed=4)
    truth = inject(root, flip=0.1, drawn=2, leak=0.04, seed=4)
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    before = snapshot(root)

    fixed = invoke("check", root, "--fix", "--format", "json")
    assert fixed.exit_code == 0, fixed.output
    report = json.loads(fixed.stdout)
    moved = {m["from"]: m["to"] for m in report["moved"]}
    assert "train/cat/broken.jpg" in moved and any(
        m.startswith("_quarantine/unreadable/") for m in moved.values()
    )
    assert {p.relative_to(root).as_posix() for p in truth.leaked} <= set(moved)  # the copies in val/
    for source, target in moved.items():
        assert not os.path.lexists(root / source) and os.path.lexists(root / target)
    assert (root / "_quarantine" / "log.jsonl").is_file()

    again = invoke("check", root, "--format", "json")  # the quarantine is not part of the dataset
    assert (
        not set(json.loads(again.output)["findings"][i]["path"] for i in range(0))
        and "_quarantine" not in again.output
    )

    undone = invoke("check", root, "--undo")
    assert undone.exit_code == 0 and f"put back {len(moved)} file(s)" in undone.output
    assert snapshot(root) == before


def _finding(path: Path) -> Finding:
    return Finding("duplicate", path, 1.0, "", "")


def test_undo_after_an_interrupted_fix(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    a, b = tmp_path / "train" / "cat" / "a.jpg", tmp_path / "train" / "cat" / "b.jpg"
    a.write_bytes(b"a"), b.write_bytes(b"b")
    quarantine.quarantine(tmp_path, [_finding(a)])
    # A fix killed after logging b's move and before making it:
    entry = {
        "kind": "duplicate",
        "from": "train/cat/b.jpg",
        "to": "_quarantine/duplicate/train/cat/b.jpg",
        "manifest": None,
    }
    with open(tmp_path / "_quarantine" / "log.jsonl", "a") as log:
        log.write(json.dumps(entry) + "\n")
    moves = quarantine.undo(tmp_path)
    assert [m.target for m in moves] == [a] and a.read_bytes() == b"a" and b.read_bytes() == b"b"
    assert not (tmp_path / "_quarantine").exists()


def test_undo_never_overwrites_a_file_put_back_by_hand(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    a = tmp_path / "train" / "cat" / "a.jpg"
    a.write_bytes(b"old")
    [move] = quarantine.quarantine(tmp_path, [_finding(a)])
    a.write_bytes(b"new")
    assert quarantine.undo(tmp_path) == []
    assert a.read_bytes() == b"new" and move.target.read_bytes() == b"old"
    assert "exists again" in caplog.text
    assert (tmp_path / "_quarantine" / "log.jsonl").read_text().count("\n") == 1  # kept for later
    a.unlink()
    assert [m.target for m in quarantine.undo(tmp_path)] == [a] and a.read_bytes() == b"old"


def test_a_second_quarantine_of_the_same_name_keeps_both(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    a = tmp_path / "train" / "cat" / "a.jpg"
    a.write_bytes(b"1")
    first = quarantine.quarantine(tmp_path, [_finding(a)])[0].target
    a.write_bytes(b"2")
    second = quarantine.quarantine(tmp_path, [_finding(a)])[0].target
    assert first != second and first.read_bytes() == b"1" and second.read_bytes() == b"2"
