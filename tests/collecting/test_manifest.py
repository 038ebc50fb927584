"""The manifest: one row per photo found, known photos skipped, attribution that a
spreadsheet cannot turn into formulas."""

from __future__ import annotations

import csv
from pathlib import Path

from photoclass.collecting.flickr import Photo
from photoclass.collecting.manifest import Manifest, Outcome, _cell
from photoclass.collecting.validate import Checked


def photo(photo_id: str, url: str = "http://x/1.jpg", title: str = "t") -> Photo:
    return Photo(photo_id, "9@N01", "Ann", title, 4, 1_500_000_000, url, "c" if url else "", 800, 600)


def test_add_keeps_search_order_skips_known_photos_and_records_photos_without_sizes(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite") as manifest:
        assert manifest.add("cat", "text=cat", [photo("1"), photo("2"), photo("3", url="")], limit=10) == 3
        assert manifest.add("owl", "text=owl", [photo("2"), photo("4"), photo("5"), photo("6")], limit=2) == 2
        assert [r["id"] for r in manifest.pending("cat", 10)] == ["1", "2"]
        assert [r["id"] for r in manifest.pending("owl", 10)] == ["4", "5"], "2 is a cat already"
        assert manifest.reasons() == {"no_size": 1}


def test_outcomes_and_attribution(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.save_licenses({4: ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/")})
        manifest.add("cat", "text=cat", [photo("1", title="=cmd|' /C calc'!A0"), photo("2")], limit=9)
        checked = Checked(800, 600, "ab" * 32, "0" * 16)
        manifest.record([Outcome("1", "ok", None, checked, 1), Outcome("2", "failed", "timeout", None, 6)])
        manifest.set_splits({"1": "train"})
        manifest.write_attribution(tmp_path / "ATTRIBUTION.csv")
        assert manifest.counts() == {"cat": {"ok": 1, "failed": 1}}
    with open(tmp_path / "ATTRIBUTION.csv", newline="", encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))  # only kept photos
    assert row["file"] == "train/cat/1.jpg" and row["license"] == "CC BY 2.0"
    assert row["title"] == "'=cmd|' /C calc'!A0"


def test_cells_lose_control_characters_and_formula_starts() -> None:
    assert _cell("line\nbreak\x00") == "line break "
    assert _cell("@SUM(A1)") == "'@SUM(A1)" and _cell("-1") == "'-1" and _cell("owl") == "owl"
