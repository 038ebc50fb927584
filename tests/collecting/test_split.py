"""The split: deterministic, stratified, grouped by owner and near-duplicates; and names that
cannot escape DATA."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from photoclass.collecting.split import (
    IncomingFolder,
    Member,
    assign_splits,
    class_folder,
    class_folders,
    is_photo_id,
    photo_path,
)
from photoclass.errors import ConfigError


def members(n_per_class: int = 100, owners: int = 60, seed: int = 0) -> list[Member]:
    rng = random.Random(seed)
    return [
        Member(
            str(10_000 + i + 1000 * k), folder, f"{rng.randrange(owners)}@N01", f"{rng.getrandbits(64):016x}"
        )
        for k, folder in enumerate(("cat", "owl"))
        for i in range(n_per_class)
    ]


def counts(photos: list[Member], assignment: dict[str, str]) -> Counter[tuple[str, str]]:
    return Counter((assignment[p.id], p.folder) for p in photos)


def test_same_photos_and_seed_give_the_same_split_in_any_order() -> None:
    photos = members()
    first = assign_splits(photos, seed=3)
    assert assign_splits(list(reversed(photos)), seed=3) == first
    assert assign_splits(photos, seed=4) != first


def test_each_class_is_split_in_the_asked_shares() -> None:
    photos = members(owners=10_000)  # nearly everyone their own owner: exact shares
    split = counts(photos, assign_splits(photos, fractions=(0.7, 0.2, 0.1)))
    for folder in ("cat", "owl"):
        assert (split["train", folder], split["val", folder], split["test", folder]) == (70, 20, 10)


def test_test_per_class_is_exact() -> None:
    photos = members(owners=10_000)
    split = counts(photos, assign_splits(photos, test_per_class=10))
    assert split["test", "cat"] == split["test", "owl"] == 10
    assert split["val", "cat"] == 10 and split["train", "cat"] == 80


def test_an_owner_never_spans_two_splits_and_shares_stay_close() -> None:
    photos = members(owners=40)
    assignment = assign_splits(photos)
    by_owner: dict[str, set[str]] = {}
    for p in photos:
        by_owner.setdefault(p.owner, set()).add(assignment[p.id])
    assert all(len(splits) == 1 for splits in by_owner.values())
    split = counts(photos, assignment)
    assert all(abs(split["test", f] - 10) <= 4 for f in ("cat", "owl"))
    ungrouped = assign_splits(photos, group_by_owner=False)
    assert any(len({ungrouped[p.id] for p in photos if p.owner == o}) > 1 for o in by_owner)


def test_photos_keep_their_split_when_more_are_added() -> None:
    everything = members(100)
    first = [p for p in everything if int(p.id) % 1000 < 50]
    before = assign_splits(first, seed=0)
    after = assign_splits(everything, seed=0, existing=before)
    assert {i: after[i] for i in before} == before  # nothing moves
    assert any(assign_splits(everything, seed=0)[i] != s for i, s in before.items())  # would have, unasked
    owners: dict[str, set[str]] = {}
    for p in everything:
        owners.setdefault(p.owner, set()).add(after[p.id])
    assert all(len(splits) == 1 for splits in owners.values())
    shares = counts(everything, after)
    for folder in ("cat", "owl"):
        assert 65 <= shares["train", folder] <= 95 and shares["test", folder] <= 20


def test_near_duplicates_share_a_split_even_across_owners() -> None:
    photos = members(owners=10_000)
    twin = Member("99999", "cat", "someone-else@N01", photos[0].phash[:-1] + "0")
    twin_far = Member("99998", "owl", "other@N01", f"{int(photos[1].phash, 16) ^ 0xFFFF:016x}")
    for seed in range(10):
        assignment = assign_splits([*photos, twin, twin_far], seed=seed, group_distance=10)
        assert assignment[twin.id] == assignment[photos[0].id]
    spread = {assign_splits([*photos, twin_far], seed=s)[twin_far.id] for s in range(10)}
    assert len(spread) > 1, "16 bits apart is not a near-duplicate"


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("cat", "cat"),
        ("red fox", "red_fox"),
        ("../../etc", "etc"),
        ("a/b\\c", "a_b_c"),
        ("chouette", "chouette"),
        ("猫", "猫"),
        (".hidden", "hidden"),
        ("_private", "private"),
        ("con", "con_"),
        ("x\x00y\ny", "x_y_y"),
        ("[red]bold[/red]", "red_bold_red"),
        ("/etc/passwd", "etc_passwd"),
        ("C:\\Windows\\System32", "C_Windows_System32"),
        ("con.txt", "con_.txt"),  # reserved with an extension too
        ("LPT9", "LPT9_"),
        ("COM¹", "COM1_"),  # NFKC makes it COM1, which Windows reserves
        ("ｃａｔ", "cat"),  # fullwidth look-alikes
        ("ﬁsh", "fish"),  # a ligature
        ("e\u0301te\u0301", "été"),  # combining accents, composed
        ("owl\u202e", "owl"),  # a right-to-left override
    ],
)
def test_class_names_become_safe_folder_names(name: str, folder: str, tmp_path: Path) -> None:
    assert class_folder(name) == folder
    path = photo_path(tmp_path, "train", class_folder(name), "123")
    assert path.resolve().is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize("name", ["..", "/", "...", "\x00", "   "])
def test_names_with_nothing_left_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        class_folder(name)


@pytest.mark.parametrize("letter", ["a", "猫", "\U00020000"])  # 1, 3 and 4 bytes in UTF-8
def test_long_names_are_cut_to_a_name_every_file_system_takes(letter: str, tmp_path: Path) -> None:
    folder = class_folder(letter * 300)
    assert len(folder) <= 64 and len(folder.encode("utf-8")) <= 128 and set(folder) == {letter}
    photo_path(tmp_path, "train", folder, "1").parent.mkdir(parents=True)  # the OS takes it


def test_photo_ids_are_digits_and_nothing_else() -> None:
    assert is_photo_id("53012345678") and is_photo_id("9" * 20)
    for bad in ("", "9" * 21, "１２３", "-5", "1.5", "../1", "1/2", "1\x00", " 1", "٣"):
        assert not is_photo_id(bad), bad


def test_two_names_for_one_folder_are_refused() -> None:
    with pytest.raises(ConfigError, match="share the folder"):
        class_folders(["red fox", "red/fox"])
    with pytest.raises(ConfigError):
        class_folders(["Cat", "cat"])  # one folder on case-insensitive file systems
    with pytest.raises(ConfigError):
        class_folders(["STRASSE", "straße"])  # equal under Unicode case folding
    with pytest.raises(ConfigError):
        class_folders(["cat", "ｃａｔ"])  # equal after NFKC
    with pytest.raises(ConfigError):
        class_folders(["a" * 300, "a" * 200])  # equal once cut to length


def test_photo_path_refuses_unsafe_parts(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        photo_path(tmp_path, "train", "cat", "../1")
    with pytest.raises(ValueError):
        photo_path(tmp_path, "train", "../cat", "1")
    with pytest.raises(ValueError):
        photo_path(tmp_path, "../..", "cat", "1")
    with pytest.raises(ValueError):
        photo_path(tmp_path, "train", "cat", "1" * 21)


def test_the_incoming_folder_knows_what_is_saved_whoever_saved_it(tmp_path: Path) -> None:
    earlier = IncomingFolder(tmp_path, "cat")
    earlier.save("1", b"one")  # a run killed before recording it
    sink = IncomingFolder(tmp_path, "cat")
    assert sink.saved("1") == b"one" and sink.saved("2") is None  # the folder is listed now
    sink.save("2", b"two")
    assert sink.saved("2") == b"two"
    sink.discard("1")
    assert sink.saved("1") is None and not photo_path(tmp_path, None, "cat", "1").exists()
    photo_path(tmp_path, None, "cat", "2").unlink()  # gone behind its back: not there either
    assert sink.saved("2") is None
