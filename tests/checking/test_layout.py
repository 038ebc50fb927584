"""Layout problems and unreadable files are findings, all of them at once (training stops at
the first); only a path that is not a folder is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import photoclass
from photoclass.checking import layout
from photoclass.data.cache import decode_all
from photoclass.errors import DatasetError


def _photo(path: Path, colour: tuple[int, int, int] = (200, 120, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), colour).save(path)
    return path


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for cls in ("cat", "owl"):
        for i in range(3):
            _photo(root / "train" / cls / f"{cls}{i}.jpg", (60 * i, 90, 200 if cls == "owl" else 20))
    _photo(root / "train" / "stray.jpg")  # outside any class folder
    (root / "train" / "empty").mkdir()  # a class folder with nothing in it
    _photo(root / "val" / "dog" / "dog0.jpg")  # a class train/ lacks
    _photo(root / "validation" / "cat" / "x.jpg")  # not a split
    (root / "train" / "cat" / "notes.jpg").write_text("not a photo")
    whole = root / "train" / "owl" / "owl0.jpg"
    (root / "train" / "owl" / "cut.jpg").write_bytes(whole.read_bytes()[:-200])
    _photo(root / "_quarantine" / "x" / "ignored.jpg")  # set aside: not part of the dataset
    return root


def test_every_layout_problem_is_a_finding(messy: Path) -> None:
    inventory = layout.take_inventory(messy)
    problems = {f.path.relative_to(messy).as_posix(): f.detail for f in inventory.findings}
    assert set(problems) == {"train/stray.jpg", "train/empty", "val/dog", "validation"}, problems
    assert "not in train/" in problems["val/dog"] and "not a split" in problems["validation"]
    assert all(f.kind == "layout" and f.confidence == 1.0 and f.action for f in inventory.findings)
    assert inventory.classes == ["cat", "empty", "owl"]
    assert not any("_quarantine" in str(p.path) for p in inventory.photos)


def test_a_single_class_or_no_train_folder(tmp_path: Path) -> None:
    _photo(tmp_path / "one" / "train" / "cat" / "a.jpg")
    [finding] = layout.take_inventory(tmp_path / "one").findings
    assert "at least 2 class folders" in finding.detail
    _photo(tmp_path / "none" / "cat" / "a.jpg")
    details = [f.detail for f in layout.take_inventory(tmp_path / "none").findings]
    assert "has no train/ folder" in details[0] and "cat/ is not a split" in details[1]


def test_unreadable_files_say_why(messy: Path) -> None:
    inventory = layout.take_inventory(messy)
    decoded = decode_all([p.path for p in inventory.photos], 64, use_cache=False)
    reasons = {f.path.name: f.detail for f in layout.unreadable_findings(inventory.photos, decoded.skipped)}
    assert reasons == {
        "notes.jpg": "not an image (unrecognised format)",
        "cut.jpg": "truncated image (file ends early)",
    }


def test_check_reports_them_instead_of_stopping(messy: Path) -> None:
    result = photoclass.check(messy, progress=False)
    kinds = result.counts()
    assert kinds["layout"] == 4 and kinds["unreadable"] == 2
    assert result.files["train"][""] == 1  # the stray file


def test_a_path_that_is_not_a_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        photoclass.check(tmp_path / "nowhere", progress=False)
    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        photoclass.undo_check(tmp_path / "nowhere")


def test_any_class_names(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for cls in ("猫", "<b>owl & co"):
        for i in range(3):
            _photo(root / "train" / cls / f"{i}.jpg", (40 * i, 200, 90 if cls == "猫" else 10))
    _photo(root / "val" / "猫" / "copy.jpg", (0, 200, 90))  # the same picture as train/猫/0.jpg
    result = photoclass.check(root, report_out=tmp_path / "check.html", progress=False)
    assert result.classes == ["<b>owl & co", "猫"]
    [leak] = [f for f in result.findings if f.kind == "leakage"]
    assert leak.path.relative_to(root).as_posix() == "val/猫/copy.jpg"
    html = (tmp_path / "check.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;owl &amp; co" in html and "<b>owl" not in html and "val/猫/copy.jpg" in html
