"""The dataset folder layout: `DATA/train/<class>/*.jpg`, optionally `DATA/val/` and
`DATA/test/` with the same class folders. Any folder in this layout is valid input,
collected by photoclass or not. Layout mistakes raise `DatasetError` naming the folder
that is wrong and how to fix it. The rules themselves (`stray_files`, `empty_class_folders`,
`MIN_CLASSES`) are public so that `photoclass check` can list every problem, where training
stops at the first."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from photoclass.errors import DatasetError

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


def files_in(folder: Path) -> list[Path]:
    """Every visible file under `folder`, at any depth, in visible folders only."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and visible(p)
        and all(visible(part) for part in p.relative_to(folder).parents if part.name)
    )


def class_folders(split_dir: Path) -> list[str]:
    """The names of the visible folders in a split, sorted, whatever they hold."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and visible(p))


def stray_files(split_dir: Path) -> list[Path]:
    """Files lying in a split folder itself, outside any class folder."""
    return sorted(p for p in split_dir.iterdir() if p.is_file() and visible(p))


def empty_class_folders(split_dir: Path) -> list[Path]:
    """Class folders of a split that hold no file."""
    return [split_dir / name for name in class_folders(split_dir) if not files_in(split_dir / name)]


def find_classes(split_dir: Path) -> list[str]:
    """The sorted class folders of one split, after checking its layout."""
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir} is not a folder; expected {split_dir}/<class>/*.jpg")
    stray = [p.name for p in stray_files(split_dir)]
    if stray:
        shown = ", ".join(stray[:3]) + (" ..." if len(stray) > 3 else "")
        raise DatasetError(
            f"{split_dir} holds {len(stray)} file(s) outside class folders ({shown}); "
            f"move each into {split_dir}/<class>/"
        )
    empty = empty_class_folders(split_dir)
    if empty:
        raise DatasetError(f"class folder {empty[0]} holds no files; add photos or remove the folder")
    return class_folders(split_dir)


def scan_split(split_dir: Path, classes: list[str]) -> list[Sample]:
    """The samples of one split, labelled by position in `classes`.

    A split may lack some classes (a small test set), but a class the model does not know
    is an error."""
    found = find_classes(split_dir)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(
            f"{split_dir} has class folder(s) {', '.join(unknown)} that are not among the "
            f"classes {', '.join(classes)}; rename or remove them"
        )
    return [Sample(path, classes.index(name)) for name in found for path in files_in(split_dir / name)]


def scan_dataset(root: Path) -> Dataset:
    """Check the layout under `root` and list every sample of every split."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; check the path")
    train_dir = root / "train"
    if not train_dir.is_dir():
        hint = ""
        if any(p.is_dir() and visible(p) for p in root.iterdir()):
            hint = f" (if the folders in {root} are your classes, move them into {train_dir}/)"
        raise DatasetError(f"{root} has no train/ folder; expected {train_dir}/<class>/*.jpg{hint}")
    classes = find_classes(train_dir)
    if len(classes) < MIN_CLASSES:
        have = f"only {classes[0]}" if classes else "none"
        raise DatasetError(
            f"{train_dir} needs at least two class folders to learn from ({have}); "
            f"add {train_dir}/<another-class>/ with photos"
        )
    optional = {
        name: scan_split(root / name, classes) if (root / name).is_dir() else None for name in SPLITS[1:]
    }
    return Dataset(root, classes, scan_split(train_dir, classes), optional["val"], optional["test"])


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
