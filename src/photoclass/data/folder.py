"""The dataset folder layout: `DATA/train/<class>/*.jpg`, optionally `DATA/val/` and
`DATA/test/` with the same class folders. Any folder in this layout is valid input,
collected by photoclass or not. Layout mistakes raise `DatasetError` naming the folder
that is wrong and how to fix it. The rules themselves (`stray_files`, `empty_class_folders`,
`MIN_CLASSES`) are public so that `photoclass check` can list every problem, where training
stops at the first.

Symbolic links are followed only while they stay inside the folder being read (the dataset,
or the folder given to `evaluate` or `predict`): a link to a file or folder elsewhere is
skipped, with a warning, unless the caller passes `follow_symlinks=True`. Each folder is
entered once (by device and inode), so a link loop ends the walk instead of hanging it.
"""

from __future__ import annotations

import logging
import os
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from photoclass.errors import DatasetError

log = logging.getLogger(__name__)

# Files the OS or other tools leave next to photos; never data, never an error.
IGNORED_NAMES = {"thumbs.db", "desktop.ini", "manifest.sqlite", "attribution.csv"}
MIN_CLASSES = 2  # a classifier needs something to tell apart
SPLITS = ("train", "val", "test")  # train is required; the others are optional


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass(frozen=True)
class Dataset:
    """A scanned dataset: its classes and the samples of each split present."""

    root: Path
    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None
    test: list[Sample] | None


def visible(path: Path) -> bool:
    """False for names every stage ignores: hidden (`.`), set aside (`_quarantine`), OS litter."""
    return not path.name.startswith((".", "_")) and path.name.lower() not in IGNORED_NAMES


@dataclass
class Links:
    """How symbolic links are treated while reading under `root`, and the ones skipped."""

    root: Path
    follow: bool = False  # `follow_symlinks=True`: follow links wherever they lead
    skipped: dict[Path, str] = field(default_factory=dict)  # link -> where it leads

    def __post_init__(self) -> None:
        self._real_root = os.path.realpath(self.root)

    def allows(self, path: Path) -> bool:
        """False (and the link noted) for a symlink leading outside `root`, unless following."""
        if self.follow or not path.is_symlink():
            return True
        target = os.path.realpath(path)
        if os.path.commonpath([target, self._real_root]) == self._real_root:
            return True
        self.skipped[path] = target
        return False

    def warn(self) -> None:
        if self.skipped:
            link, target = next(iter(self.skipped.items()))
            log.warning(
                "skipped %d symbolic link(s) leading outside %s, e.g. %s -> %s; pass "
                "`follow_symlinks=True` to read them",
                len(self.skipped),
                self.root,
                link,
                target,
            )

    def hint(self, folder: Path) -> str:
        """Why `folder` may look empty: links under it that were not followed."""
        inside = [link for link in self.skipped if link == folder or folder in link.parents]
        if not inside:
            return ""
        return (
            f" ({len(inside)} symbolic link(s) in it lead outside {self.root} and were not "
            "followed; pass `follow_symlinks=True` to read them)"
        )


def walk_files(folder: Path, links: Links, keep: Callable[[Path], bool] = lambda p: True) -> list[Path]:
    """Every file under `folder` whose own and parents' names pass `keep`, sorted.

    Symlinks are judged by `links`; each folder is entered once, however many links lead to
    it, so a loop of links ends. Dangling links and unreadable folders are passed over."""
    files, seen, stack = [], set(), [Path(folder)]
    while stack:
        directory = stack.pop()
        try:
            status = directory.stat()
            if (status.st_dev, status.st_ino) in seen:
                continue
            seen.add((status.st_dev, status.st_ino))
            entries = list(os.scandir(directory))
        except OSError:  # a dangling link or a loop (ELOOP), or no permission
            continue
        for entry in entries:
            path = directory / entry.name
            if not keep(path) or not links.allows(path):
                continue
            try:
                if entry.is_dir():
                    stack.append(path)
                elif entry.is_file():
                    files.append(path)
            except OSError:
                continue
    return sorted(files)


def files_in(folder: Path, links: Links | None = None) -> list[Path]:
    """Every visible file under `folder`, at any depth, in visible folders only (symbolic
    links judged by `links`; without it, those leading outside `folder` are skipped)."""
    return walk_files(folder, links or Links(folder), visible)


def _entries(split_dir: Path, links: Links | None) -> list[Path]:
    links = links or Links(split_dir)
    return [p for p in sorted(split_dir.iterdir()) if visible(p) and links.allows(p)]


def class_folders(split_dir: Path, links: Links | None = None) -> list[str]:
    """The names of the visible folders in a split, sorted, whatever they hold."""
    return [p.name for p in _entries(split_dir, links) if p.is_dir()]


def stray_files(split_dir: Path, links: Links | None = None) -> list[Path]:
    """Files lying in a split folder itself, outside any class folder."""
    return [p for p in _entries(split_dir, links) if p.is_file()]


def empty_class_folders(split_dir: Path, links: Links | None = None) -> list[Path]:
    """Class folders of a split that hold no file."""
    links = links or Links(split_dir)
    return [
        split_dir / name for name in class_folders(split_dir, links) if not files_in(split_dir / name, links)
    ]


def find_classes(split_dir: Path, links: Links | None = None) -> list[str]:
    """The sorted class folders of one split, after checking its layout."""
    links = links or Links(split_dir)
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir} is not a folder; expected {split_dir}/<class>/*.jpg")
    if not links.allows(split_dir):
        raise DatasetError(
            f"{split_dir} is a symbolic link to {links.skipped[split_dir]}, outside {links.root}; "
            "pass `follow_symlinks=True` to read it"
        )
    stray = [p.name for p in stray_files(split_dir, links)]
    if stray:
        shown = ", ".join(stray[:3]) + (" ..." if len(stray) > 3 else "")
        raise DatasetError(
            f"{split_dir} holds {len(stray)} file(s) outside class folders ({shown}); "
            f"move each into {split_dir}/<class>/"
        )
    empty = empty_class_folders(split_dir, links)
    if empty:
        raise DatasetError(
            f"class folder {empty[0]} holds no files{links.hint(empty[0])}; add photos or remove the folder"
        )
    return class_folders(split_dir, links)


def scan_split(
    split_dir: Path, classes: list[str], *, follow_symlinks: bool = False, links: Links | None = None
) -> list[Sample]:
    """The samples of one split, labelled by position in `classes`.

    A split may lack some classes (a small test set), but a class the model does not know
    is an error. Symlinks leading outside `split_dir` (or `links.root`) are skipped unless
    `follow_symlinks=True`."""
    own = links is None
    links = links or Links(Path(split_dir), follow_symlinks)
    found = find_classes(split_dir, links)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(
            f"{split_dir} has class folder(s) {', '.join(unknown)} that are not among the "
            f"classes {', '.join(classes)}; rename or remove them"
        )
    samples = [
        Sample(path, classes.index(name)) for name in found for path in files_in(split_dir / name, links)
    ]
    if own:
        links.warn()
    return samples


def scan_dataset(root: Path, *, follow_symlinks: bool = False) -> Dataset:
    """Check the layout under `root` and list every sample of every split.

    Symlinks leading outside `root` are skipped (with a warning) unless `follow_symlinks=True`."""
    root = Path(root)
    links = Links(root, follow_symlinks)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; check the path")
    train_dir = root / "train"
    if not train_dir.is_dir():
        hint = ""
        if any(p.is_dir() and visible(p) for p in root.iterdir()):
            hint = f" (if the folders in {root} are your classes, move them into {train_dir}/)"
        raise DatasetError(f"{root} has no train/ folder; expected {train_dir}/<class>/*.jpg{hint}")
    classes = find_classes(train_dir, links)
    if len(classes) < MIN_CLASSES:
        have = f"only {classes[0]}" if classes else "none"
        raise DatasetError(
            f"{train_dir} needs at least two class folders to learn from ({have}){links.hint(train_dir)}; "
            f"add {train_dir}/<another-class>/ with photos"
        )
    optional = {
        name: scan_split(root / name, classes, links=links) if (root / name).is_dir() else None
        for name in SPLITS[1:]
    }
    train = scan_split(train_dir, classes, links=links)
    links.warn()
    return Dataset(root, classes, train, optional["val"], optional["test"])


def stratified_split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out `fraction` of each class (at least one photo), the same way for the same seed."""
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    rng = random.Random(seed)
    keep, held = [], []
    for label in sorted(by_class):
        group = sorted(by_class[label], key=lambda s: str(s.path))
        rng.shuffle(group)
        n_held = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        held += group[:n_held]
        keep += group[n_held:]
    return keep, held
