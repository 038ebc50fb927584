"""The dataset layout, and the split that fills it: `DATA/{train,val,test}/<class>/<id>.jpg`.

Photos are downloaded into `DATA/.incoming/<class>/` (hidden: a half-collected dataset must
not look like a finished one) and moved into their split at the end of a run. The split is

- deterministic: the same photos and seed give the same split, whatever the download order;
- stratified: each class is divided in the asked proportions (or `test_per_class`);
- grouped: near-duplicates, and by default all photos of one owner, land in one split, so a
  test photo never has a twin or a sibling from the same photographer in train;
- stable: photos that already have a split keep it when a later run adds photos (a larger
  `per_class`), so a test photo never moves into train; new photos fill what each split lacks,
  and join their group's split.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from photoclass.collecting.dedup import near_pairs
from photoclass.errors import ConfigError
from photoclass.files import PART, atomic_write, sync_all

SPLITS = ("train", "val", "test")
INCOMING = ".incoming"
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(10)),
    *(f"LPT{i}" for i in range(10)),
}


# ----------------------------------------------------------------------------------------------
# Names that stay inside DATA

# Longest folder name: 64 characters, and at most 128 bytes in UTF-8 (file systems count
# bytes, 255 at most; 64 letters of a 4-byte script would already be 256).
_MAX_CHARS, _MAX_BYTES = 64, 128
_PHOTO_ID = re.compile(r"[0-9]{1,20}")  # a 64-bit number has at most 20 digits


def is_photo_id(text: str) -> bool:
    """Whether `text` is what a Flickr photo id is, and so safe as a file name: 1-20 ASCII digits."""
    return _PHOTO_ID.fullmatch(text) is not None


def class_folder(name: str) -> str:
    """A class name as a folder name that is safe on any OS and stays inside DATA.

    Letters and digits of any script survive ("chouette", "猫"), after Unicode compatibility
    normalisation (NFKC: fullwidth "ｃａｔ" is "cat"); path separators, dots at the ends,
    control characters and the like become "_" or are dropped; the name is cut to 64
    characters (128 bytes); Windows' reserved device names (CON, NUL, COM1, ...) get a "_".
    """
    text = unicodedata.normalize("NFKC", name)
    text = re.sub(r"[^\w.-]+", "_", text).strip("._-")[:_MAX_CHARS]
    while len(text.encode("utf-8")) > _MAX_BYTES:
        text = text[:-1]
    text = text.strip("._-")
    if not text:
        raise ConfigError(f"class name {name!r} has no letters or digits to name a folder with")
    stem, dot, rest = text.partition(".")
    if stem.upper() in _WINDOWS_RESERVED:  # reserved with any extension too: "con.txt"
        text = f"{stem}_{dot}{rest}"
    return text


def class_folders(names: Sequence[str]) -> dict[str, str]:
    """Class name -> folder name, refusing two names that would share a folder, also on a file
    system that ignores case ("Cat" and "cat", "STRASSE" and "straße")."""
    folders: dict[str, str] = {}
    for name in names:
        folder = class_folder(name)
        clash = [other for other, f in folders.items() if f.casefold() == folder.casefold()]
        if clash:
            raise ConfigError(f"classes {clash[0]!r} and {name!r} would share the folder '{folder}'")
        folders[name] = folder
    return folders


def photo_path(data: Path, split: str | None, folder: str, photo_id: str) -> Path:
    """Where a photo lives: in its split, or in `.incoming` until it has one. Refuses (with
    `ValueError`, a bug and not a user's mistake) a part that could lead elsewhere."""
    if not is_photo_id(photo_id) or folder != class_folder(folder) or split not in (None, *SPLITS):
        raise ValueError(f"unsafe photo path parts: {split!r}, {folder!r}, {photo_id!r}")
    return data / (split or INCOMING) / folder / f"{photo_id}.jpg"


class IncomingFolder:
    """The downloader's sink for one class: `DATA/.incoming/<class>/<id>.jpg`, each written
    whole, and all of a batch flushed to the disk (`flush`) before the manifest records it."""

    def __init__(self, data: Path, folder: str) -> None:
        self.data, self.folder = data, folder
        # The file names in the folder, listed once and kept up to date by `save` and
        # `discard`: asked for every photo, a failed open cost ~45 µs (2% of a download's CPU).
        self._names: set[str] | None = None

    def saved(self, photo_id: str) -> bytes | None:
        path = photo_path(self.data, None, self.folder, photo_id)
        if self._names is None:
            self._names = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
        if path.name not in self._names:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, photo_id: str, body: bytes) -> None:
        path = photo_path(self.data, None, self.folder, photo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, body, durable=False)
        if self._names is not None:
            self._names.add(path.name)

    def flush(self) -> None:
        sync_all()

    def discard(self, photo_id: str) -> None:
        path = photo_path(self.data, None, self.folder, photo_id)
        path.unlink(missing_ok=True)
        if self._names is not None:
            self._names.discard(path.name)


def find_photo(data: Path, folder: str, photo_id: str) -> Path | None:
    """The file of a kept photo, wherever an earlier (perhaps interrupted) run left it."""
    for split in (None, *SPLITS):
        path = photo_path(data, split, folder, photo_id)
        if path.is_file():
            return path
    return None


def remove_partials(data: Path) -> int:
    """Delete the temporary files of interrupted writes (`atomic_write`); returns how many."""
    parts = [p for p in data.rglob(f".*{PART}") if p.is_file()]
    for part in parts:
        part.unlink()
    return len(parts)


# ----------------------------------------------------------------------------------------------
# The split


@dataclass(frozen=True)
class Member:
    """A kept photo, as far as the split is concerned."""

    id: str
    folder: str
    owner: str
    phash: str


def _groups(photos: Sequence[Member], by_owner: bool, distance: int) -> list[list[int]]:
    """Indices of photos that must share a split: same owner, or near-duplicate pictures."""
    parent = list(range(len(photos)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = near_pairs([p.phash for p in photos], distance)
    if by_owner:
        first: dict[str, int] = {}
        links += [(first.setdefault(p.owner, i), i) for i, p in enumerate(photos) if p.owner]
    for a, b in links:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(photos)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _targets(
    photos: Sequence[Member], fractions: tuple[float, float, float], test_per_class: int | None
) -> dict[str, Counter[str]]:
    sizes = Counter(p.folder for p in photos)
    targets: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    for folder, n in sizes.items():
        test = min(n, test_per_class) if test_per_class is not None else round(n * fractions[2])
        val = min(n - test, round(n * fractions[1]))
        targets["test"][folder], targets["val"][folder] = test, val
        targets["train"][folder] = n - test - val
    return targets


def assign_splits(
    photos: Sequence[Member],
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    test_per_class: int | None = None,
    seed: int = 0,
    group_by_owner: bool = True,
    group_distance: int = 10,
    existing: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Photo id -> "train" | "val" | "test".

    Photos in `existing` (id -> split, from an earlier run) stay where they are, and a group
    holding some goes to the split most of them are in. The other groups are placed whole,
    largest first (ties in an order fixed by the seed), each into the split that still needs
    most of its photos per class; so targets are met exactly when groups are small, and
    approximately when an owner has more photos than a split needs.
    """
    existing = {i: s for i, s in (existing or {}).items() if s in SPLITS}
    groups = _groups(photos, group_by_owner, group_distance)
    ordered = sorted(
        groups,
        key=lambda g: (-len(g), hashlib.sha256(f"{seed}:{min(photos[i].id for i in g)}".encode()).digest()),
    )
    targets = _targets(photos, fractions, test_per_class)
    left = {s: Counter(targets[s]) for s in SPLITS}
    assignment: dict[str, str] = {}
    for group in ordered:
        placed = Counter(existing[photos[i].id] for i in group if photos[i].id in existing)
        if placed:
            home = max(SPLITS, key=lambda s: (placed[s], -SPLITS.index(s)))
            for i in group:
                split = existing.get(photos[i].id, home)
                assignment[photos[i].id] = split
                left[split][photos[i].folder] -= 1
    for group in ordered:
        if photos[group[0]].id in assignment:
            continue
        need = Counter(photos[i].folder for i in group)

        def score(split: str, need: Counter[str] = need) -> tuple[int, float, int]:
            fit = sum(min(n, max(0, left[split][c])) for c, n in need.items())
            share = sum(max(0, left[split][c]) for c in need) / max(1, sum(targets[split][c] for c in need))
            return fit, share, -SPLITS.index(split)

        best = max(SPLITS, key=score)
        left[best].subtract(need)
        assignment.update({photos[i].id: best for i in group})
    return assignment


def place(data: Path, photos: Sequence[Member], assignment: dict[str, str]) -> None:
    """Move each photo's file into its split folder (a no-op for photos already there).

    Each move is an atomic rename; an interrupted run is completed by running it again.
    """
    for photo in photos:
        target = photo_path(data, assignment[photo.id], photo.folder, photo.id)
        source = find_photo(data, photo.folder, photo.id)
        if source is not None and source != target:
            _move(source, target)


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def clear_incoming(data: Path) -> None:
    """Remove what is left in `.incoming` after placing: files no kept photo owns."""
    incoming = data / INCOMING
    if not incoming.is_dir():
        return
    for path in sorted(incoming.rglob("*"), reverse=True):  # files before their folders
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink()
    incoming.rmdir()
