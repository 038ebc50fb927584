"""The dataset layout: every mistake gets a one-line error naming the folder and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoclass.data.folder import Sample, scan_dataset, stratified_split
from photoclass.errors import DatasetError


def touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_valid_layout_lists_classes_and_splits(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for cls in ("owl", "cat", "zebra"):
            touch(tmp_path / split / cls / "a.jpg")
    touch(tmp_path / "train" / ".DS_Store")  # OS litter is ignored, not an error
    touch(tmp_path / "train" / "cat" / ".hidden.jpg")
    ds = scan_dataset(tmp_path)
    assert ds.classes == ["cat", "owl", "zebra"]
    assert [s.label for s in ds.train] == [0, 1, 2]
    assert ds.val is not None and len(ds.val) == 3
    assert ds.test is None


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (None, "does not exist"),
        (lambda root: touch(root / "cat" / "a.jpg"), "has no train/ folder"),
        (lambda root: touch(root / "train" / "cat" / "a.jpg"), "needs at least two class folders"),
        (lambda root: (root / "train").mkdir(parents=True), "needs at least two class folders"),
        (
            lambda root: [touch(root / "train" / "cat" / "a.jpg"), (root / "train" / "owl").mkdir()],
            "holds no files",
        ),
        (
            lambda root: (
                [touch(root / "train" / c / "a.jpg") for c in ("cat", "owl")]
                + [touch(root / "train" / "stray.jpg")]
            ),
            "outside class folders",
        ),
        (
            lambda root: (
                [touch(root / "train" / c / "a.jpg") for c in ("cat", "owl")]
                + [touch(root / "val" / "dog" / "a.jpg")]
            ),
            "not among the classes",
        ),
    ],
    ids=[
        "missing-root",
        "no-train",
        "one-class",
        "no-class",
        "empty-class",
        "stray-file",
        "unknown-val-class",
    ],
)
def test_layout_mistakes_are_one_line_errors(tmp_path: Path, build, expected: str) -> None:
    root = tmp_path / "data"
    if build is not None:
        root.mkdir()
        build(root)
    with pytest.raises(DatasetError) as info:
        scan_dataset(root)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(root) in message


def test_flat_class_folders_hint_at_the_fix(tmp_path: Path) -> None:
    touch(tmp_path / "cat" / "a.jpg")
    with pytest.raises(DatasetError, match="move them into"):
        scan_dataset(tmp_path)


def test_stratified_split_is_seeded_and_keeps_every_class(tmp_path: Path) -> None:
    samples = [Sample(tmp_path / f"{c}{i}.jpg", c) for c in range(3) for i in range(10 + 5 * c)]
    keep, held = stratified_split(samples, 0.2, seed=1)
    again_keep, again_held = stratified_split(samples, 0.2, seed=1)
    other_keep, _ = stratified_split(samples, 0.2, seed=2)
    assert (keep, held) == (again_keep, again_held)
    assert keep != other_keep
    assert sorted(s.label for s in held) == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert not set(keep) & set(held)
    assert len(keep) + len(held) == len(samples)
