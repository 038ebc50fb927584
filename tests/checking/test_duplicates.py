"""Duplicates within a split and leakage across splits, from real photos copied and re-encoded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from photoclass.checking import duplicates, layout
from photoclass.data.cache import decode_all

from ..conftest import cats_owls_sample


def _duplicates(root: Path) -> dict[str, tuple[str, str, float]]:
    inventory = layout.take_inventory(root)
    decoded = decode_all([p.path for p in inventory.photos], 224)
    sha, hashes = duplicates.fingerprints(inventory.photos, decoded.images, decoded.ok)
    return {
        f.path.relative_to(root).as_posix(): (f.kind, f.other.relative_to(root).as_posix(), f.confidence)
        for f in duplicates.duplicate_findings(root, inventory.photos, sha, hashes)
    }


def _reencode(source: Path, target: Path, scale: float = 0.8) -> None:
    with Image.open(source) as img:
        img.convert("RGB").resize((round(img.width * scale), round(img.height * scale))).save(
            target, quality=80
        )


@pytest.fixture
def sample(tmp_path: Path, shared_data: Path) -> Path:
    return cats_owls_sample(tmp_path / "data", {"train": 12, "val": 4, "test": 4}, seed=3)


def test_copies_are_found_and_the_earliest_split_is_kept(sample: Path) -> None:
    before = _duplicates(sample)
    train_cats = sorted((sample / "train" / "cat").iterdir())
    a, b, c, d = (p.relative_to(sample).as_posix() for p in train_cats[:4])
    shutil.copyfile(train_cats[0], sample / "train" / "cat" / "copy.jpg")  # same split, same bytes
    _reencode(train_cats[1], sample / "train" / "owl" / "recoded.jpg")  # same split, another label
    shutil.copyfile(train_cats[2], sample / "val" / "cat" / "leak.jpg")  # train -> val
    _reencode(train_cats[3], sample / "test" / "cat" / "leak2.jpg")  # train -> test, re-encoded
    val_cat = sorted((sample / "val" / "cat").iterdir())[0]
    shutil.copyfile(val_cat, sample / "test" / "cat" / "leak3.jpg")  # val -> test
    found = {k: v for k, v in _duplicates(sample).items() if k not in before}
    assert found == {
        "train/cat/copy.jpg": ("duplicate", a, 1.0),
        "train/owl/recoded.jpg": ("duplicate", b, duplicates.CONFIDENCE["same"]),
        "val/cat/leak.jpg": ("leakage", c, 1.0),
        "test/cat/leak2.jpg": ("leakage", d, duplicates.CONFIDENCE["same"]),
        "test/cat/leak3.jpg": ("leakage", val_cat.relative_to(sample).as_posix(), 1.0),
    }


def test_the_detail_names_a_label_conflict(sample: Path) -> None:
    photo = sorted((sample / "train" / "cat").iterdir())[0]
    shutil.copyfile(photo, sample / "val" / "owl" / "twin.jpg")
    inventory = layout.take_inventory(sample)
    decoded = decode_all([p.path for p in inventory.photos], 224)
    sha, hashes = duplicates.fingerprints(inventory.photos, decoded.images, decoded.ok)
    [leak] = [
        f
        for f in duplicates.duplicate_findings(sample, inventory.photos, sha, hashes)
        if f.path.name == "twin.jpg"
    ]
    assert "labelled cat there and owl here" in leak.detail and "photo the model trained on" in leak.action
