"""A collected dataset's manifest against its folder, and what a fix and an undo do to it.
The manifest is written by collect's own code (`photoclass.collecting.manifest.Manifest`)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoclass.checking import agreement, layout, quarantine
from photoclass.checking.findings import Finding
from photoclass.collecting.flickr import Photo
from photoclass.collecting.manifest import MANIFEST, Manifest, Outcome
from photoclass.collecting.validate import Checked
from photoclass.errors import DatasetError


def _photo(n: int) -> Photo:
    return Photo(id=str(n), owner=f"{n}@N00", owner_name=f"owner {n}", title=f"photo {n}", license=4,
                 uploaded=1_600_000_000, url=f"https://live.example/{n}.jpg", size="c", width=64, height=48)  # fmt: skip


def _rows(root: Path) -> list[tuple]:
    with sqlite3.connect(root / MANIFEST) as db:
        return db.execute("SELECT * FROM photos ORDER BY id").fetchall()


@pytest.fixture
def collected(tmp_path: Path) -> Path:
    """Per class: 4 train and 2 val photos kept, one rejected as a duplicate (no file)."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    root.mkdir()
    with Manifest(root / MANIFEST) as manifest:
        for c, name in enumerate(("cat", "owl")):
            photos = [_photo(1000 * (c + 1) + i) for i in range(7)]
            manifest.add(name, name, photos, limit=len(photos))
            ok = Checked(width=64, height=48, sha256="0" * 64, phash="0" * 16)
            outcomes = [Outcome(p.id, "ok", None, ok, 1) for p in photos[:6]]
            manifest.record([*outcomes, Outcome(photos[6].id, "rejected", "duplicate", None, 1)])
            splits = {p.id: "train" if i < 4 else "val" for i, p in enumerate(photos[:6])}
            manifest.set_splits(splits)
            for photo_id, split in splits.items():
                path = root / split / name / f"{photo_id}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return root


def _disagreements(root: Path) -> dict[str, str]:
    photos = layout.take_inventory(root).photos
    return {f.path.relative_to(root).as_posix(): f.kind for f in agreement.manifest_findings(root, photos)}


def test_a_faithful_folder_has_no_finding(collected: Path) -> None:
    assert _disagreements(collected) == {}


def test_each_kind_of_disagreement_is_caught(collected: Path) -> None:
    (collected / "train" / "cat" / "1000.jpg").unlink()  # missing
    os.replace(collected / "train" / "cat" / "1001.jpg", collected / "val" / "cat" / "1001.jpg")  # split
    os.replace(collected / "train" / "owl" / "2000.jpg", collected / "train" / "cat" / "2000.jpg")  # class
    shutil.copyfile(
        collected / "val" / "owl" / "2004.jpg", collected / "train" / "owl" / "mine.jpg"
    )  # unknown
    shutil.copyfile(
        collected / "val" / "cat" / "1004.jpg", collected / "val" / "cat" / "1006.jpg"
    )  # rejected
    assert _disagreements(collected) == {
        "train/cat/1000.jpg": "missing_file",
        "val/cat/1001.jpg": "split_mismatch",
        "train/cat/2000.jpg": "class_mismatch",
        "train/owl/mine.jpg": "unlisted_file",
        "val/cat/1006.jpg": "unlisted_file",
    }
    details = {
        f.path.name: f.detail
        for f in agreement.manifest_findings(collected, layout.take_inventory(collected).photos)
    }
    assert details["1006.jpg"] == "the manifest has it as rejected (duplicate)"
    assert details["mine.jpg"] == "not in the manifest"


def test_a_fix_records_the_quarantine_and_undo_restores_every_row(collected: Path) -> None:
    before = _rows(collected)
    moved = collected / "train" / "owl" / "2001.jpg"
    copy = collected / "val" / "owl" / "2001.jpg"  # a copy of a manifest photo outside its home
    shutil.copyfile(moved, copy)
    quarantine.quarantine(
        collected, [Finding("mislabelled", moved, 0.99, "", ""), Finding("leakage", copy, 1.0, "", "")]
    )
    row = agreement.manifest_rows(collected, ["2001"])["2001"]
    assert (row["status"], row["error"], row["split"]) == ("rejected", "check: mislabelled", None)
    assert _disagreements(collected) == {}  # a quarantined photo is accounted for
    quarantine.undo(collected)
    copy.unlink()
    assert _rows(collected) == before


def test_a_broken_manifest_is_a_one_line_error(collected: Path) -> None:
    (collected / MANIFEST).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(DatasetError, match="is not a manifest photoclass can read"):
        agreement.manifest_findings(collected, layout.take_inventory(collected).photos)
