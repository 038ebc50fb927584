"""The manifest, for any photos Flickr may describe: what `add` records comes back exactly (text
of any script, NUL and formulas included), `record` and `kept` agree, and no cell of
ATTRIBUTION.csv can start a spreadsheet formula."""

from __future__ import annotations

import csv
import tempfile
import unicodedata
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from photoclass.collecting.flickr import Photo
from photoclass.collecting.manifest import Checked, Manifest, Outcome

from .conftest import examples

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
# Text a photographer may type, weighted towards what spreadsheets and CSV readers trip on.
texts = st.one_of(
    st.text(max_size=40),
    st.tuples(
        st.sampled_from(["=", "+", "-", "@", "\t=", "\r+", " =", "\0", "\ufeff="]), st.text(max_size=20)
    ).map("".join),
    st.sampled_from(['=HYPERLINK("http://x","y")', "-1+1", "@SUM(A1)", 'a,"b"\n c', "\u202e=cmd"]),
)
photos = st.builds(
    Photo,
    id=st.integers(1, 60).map(str),  # a small pool: the same photo found twice, under two classes
    owner=st.from_regex(r"\A[0-9]{1,6}@N0[0-9]\Z"),
    owner_name=texts,
    title=texts,
    license=st.integers(0, 16),
    uploaded=st.integers(0, 2**31),
    url=st.sampled_from(["", "https://live.staticflickr.com/1/1_a_c.jpg"]),
    size=st.sampled_from(["c", "z"]),
    width=st.integers(0, 2048),
    height=st.integers(0, 2048),
)
CLASSES = ("cat", "owl")
FORMULA = Photo("1", "1@N01", "x", "x", 4, 0, "https://live.staticflickr.com/1/1_a_c.jpg", "c", 64, 64)
FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)"]


def expected_additions(known: set[str], found: list[Photo], limit: int) -> list[Photo]:
    """What `add` should record: results in order, new ids only, until `limit` were new."""
    added: list[Photo] = []
    for photo in found:
        if len(added) >= limit:
            break
        if photo.id not in known:
            known.add(photo.id)
            added.append(photo)
    return added


@settings(max_examples=examples(30))
@given(
    rounds=st.lists(
        st.tuples(st.sampled_from(CLASSES), st.lists(photos, max_size=12), st.integers(1, 15)), max_size=4
    ),
    fates=st.lists(st.sampled_from(["ok", "rejected", "failed", None]), min_size=60, max_size=60),
    splits=st.lists(st.sampled_from(["train", "val", "test"]), min_size=60, max_size=60),
)
@example(  # each character a spreadsheet starts a formula with, in the two free-text columns
    rounds=[
        ("cat", [replace(FORMULA, id=str(i), title=t, owner_name=t) for i, t in enumerate(FORMULAS, 1)], 4)
    ],
    fates=["ok"] * 60,
    splits=["train"] * 60,
)
def test_add_record_kept_and_attribution_round_trip(
    rounds: list[tuple[str, list[Photo], int]], fates: list[str | None], splits: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder, Manifest(Path(folder) / "manifest.sqlite") as manifest:
        known: set[str] = set()
        recorded: dict[str, tuple[str, int, Photo]] = {}  # id -> (class, rank, photo)
        for class_name, found, limit in rounds:
            expected = expected_additions(known, found, limit)
            start = sum(1 for c, _, _ in recorded.values() if c == class_name)
            assert manifest.add(class_name, "query", iter(found), limit) == len(expected)
            recorded |= {p.id: (class_name, start + i, p) for i, p in enumerate(expected)}

        rows = {r["id"]: r for r in manifest._db.execute("SELECT * FROM photos")}
        assert set(rows) == set(recorded)
        for photo_id, (class_name, rank, photo) in recorded.items():
            row = rows[photo_id]
            assert (row["class"], row["rank"], row["title"], row["owner_name"]) == (
                class_name, rank, photo.title, photo.owner_name
            )  # fmt: skip
            assert row["status"] == ("pending" if photo.url else "rejected")

        # Every pending photo meets a fate; `kept` then lists exactly the ok ones, in rank order.
        pending = [r["id"] for c in CLASSES for r in manifest.pending(c, 1000)]
        assert pending == [i for c in CLASSES for i, _ in sorted(
            ((i, rank) for i, (cls, rank, p) in recorded.items() if cls == c and p.url), key=lambda x: x[1]
        )]  # fmt: skip
        outcomes = [
            Outcome(i, fate, None if fate == "ok" else "x", Checked(64, 64, f"{i:0>64}", "0" * 16) if fate == "ok" else None, 1)
            for i, fate in zip(pending, fates, strict=False)
            if fate is not None
        ]  # fmt: skip
        manifest.record(outcomes)
        ok = [o.id for o in outcomes if o.status == "ok"]
        kept = manifest.kept()
        assert [r["id"] for r in kept] == sorted(ok, key=lambda i: (recorded[i][0], recorded[i][1]))
        assert all(r["sha256"] == f"{r['id']:0>64}" for r in kept)
        assert {r["id"] for c in CLASSES for r in manifest.pending(c, 1000)} == set(pending) - {
            o.id for o in outcomes
        }
        counts = manifest.counts()
        assert sum(counts.get(c, Counter())["ok"] for c in CLASSES) == len(ok)

        manifest.set_splits({i: splits[n] for n, i in enumerate(ok)})
        attribution = Path(folder) / "ATTRIBUTION.csv"
        manifest.write_attribution(attribution)
        with open(attribution, newline="", encoding="utf-8") as f:
            table = list(csv.reader(f))
    assert table[0][:4] == ["file", "photo_id", "class", "title"] and len(table) == len(ok) + 1
    by_id = {row[1]: row for row in table[1:]}
    assert set(by_id) == set(ok)
    for photo_id, row in by_id.items():
        class_name, _, photo = recorded[photo_id]
        assert row[0] == f"{splits[ok.index(photo_id)]}/{class_name}/{photo_id}.jpg"
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), f"a formula: {cell!r}"
            assert not any(unicodedata.category(ch).startswith("C") for ch in cell), f"a control: {cell!r}"
        assert (row[3], row[4]) == (as_text(photo.title), as_text(photo.owner_name))


def as_text(text: str) -> str:
    """What the cell must hold: control and format characters blanked, and an apostrophe
    before a formula's first character, which spreadsheets show as text."""
    shown = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return "'" + shown if shown.startswith(("=", "+", "-", "@")) else shown
