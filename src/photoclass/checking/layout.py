"""The dataset's files, and what is wrong with their layout.

The rules are training's (`photoclass.data.folder`): `DATA/train/<class>/` with at least two
classes, optional `val/` and `test/` with no class train lacks, no file outside a class folder,
no empty class folder. Training stops at the first problem; here each one is a finding, and
the files of a dataset with problems are still listed so that every other check runs on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from photoclass.checking.findings import Finding, Kind
from photoclass.data.folder import (
    MIN_CLASSES,
    SPLITS,
    Links,
    class_folders,
    empty_class_folders,
    files_in,
    stray_files,
    visible,
)
from photoclass.errors import DatasetError

KINDS = [
    Kind(
        "layout",
        "Layout problems",
        "layout",
        quarantine=True,
        rule=(
            "what `train` refuses or ignores: no train/ folder, fewer than "
            f"{MIN_CLASSES} class folders in train/, files outside class folders, empty class folders, "
            "class folders in val/ or test/ that train/ lacks, folders that are not a split. "
            "Only files outside class folders are moved by a fix."
        ),
    ),
    Kind(
        "unreadable",
        "Unreadable files",
        "files",
        quarantine=True,
        rule="files that do not decode as an image (not an image, truncated, corrupt, a decompression bomb); "
        "training skips them",
    ),
]


@dataclass(frozen=True)
class Photo:
    """A file of the dataset: its split and class folder (`label` is None for a file lying in
    the split folder itself; `known` is False for a class folder train/ lacks)."""

    path: Path
    split: str
    label: str | None
    known: bool


@dataclass
class Inventory:
    root: Path
    classes: list[str]  # train/'s class folders, the classes a model would learn
    photos: list[Photo]
    findings: list[Finding]


def require_folder(root: Path) -> Path:
    """`root` as a Path; a `DatasetError` when it is not a folder (nothing to check)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder; check the path")
    return root


def take_inventory(root: Path, *, follow_symlinks: bool = False) -> Inventory:
    """Every file of every split under `root`, and a finding for each layout problem.
    Symbolic links leading outside `root` are skipped (with a warning) unless
    `follow_symlinks=True`, as training skips them."""
    root = require_folder(root)
    links = Links(root, follow_symlinks)
    findings: list[Finding] = []
    train = root / "train"
    classes = class_folders(train, links) if train.is_dir() else []
    if not train.is_dir():
        findings.append(
            _layout(train, f"{root} has no train/ folder", f"put one folder per class in {train}/")
        )
    elif len(classes) < MIN_CLASSES:
        have = f"only {classes[0]}" if classes else "none"
        findings.append(
            _layout(
                train,
                f"train/ needs at least {MIN_CLASSES} class folders to learn from ({have})",
                f"add {train}/<another-class>/ with photos",
            )
        )
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and visible(entry) and entry.name not in SPLITS:
            findings.append(
                _layout(
                    entry,
                    f"{entry.name}/ is not a split (train, val, test): training ignores it",
                    f"move its class folders into {train}/, rename it to val/ or test/, "
                    f"or to _{entry.name} to hide it",
                )
            )

    photos: list[Photo] = []
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir() or not links.allows(split_dir):
            continue
        for stray in stray_files(split_dir, links):
            findings.append(
                _layout(
                    stray,
                    f"a file outside any class folder of {split}/",
                    f"move it into {split_dir}/<class>/",
                )
            )
            photos.append(Photo(stray, split, None, False))
        for empty in empty_class_folders(split_dir, links):
            findings.append(
                _layout(empty, "an empty class folder", "add photos or remove the folder", split, empty.name)
            )
        for name in class_folders(split_dir, links):
            known = name in classes
            if not known and split != "train" and classes:
                findings.append(
                    _layout(
                        split_dir / name,
                        f"class {name} is in {split}/ but not in train/: no model can predict it",
                        f"rename the folder to one of {', '.join(classes)}, or add {train / name}/",
                        split,
                        name,
                    )
                )
            photos += [Photo(path, split, name, known) for path in files_in(split_dir / name, links)]
    links.warn()
    return Inventory(root, classes, photos, findings)


def _layout(
    path: Path, detail: str, action: str, split: str | None = None, label: str | None = None
) -> Finding:
    return Finding("layout", path, 1.0, action, detail, split=split, label=label)


def unreadable_findings(photos: list[Photo], skipped: list[dict[str, str]]) -> list[Finding]:
    """A finding per file that did not decode (`skipped`, as `decode_all` reports them)."""
    by_path = {str(p.path): p for p in photos}
    return [
        Finding(
            "unreadable",
            Path(s["path"]),
            1.0,
            "quarantine it, then download or export it again if you need it",
            s["reason"],
            split=by_path[s["path"]].split,
            label=by_path[s["path"]].label,
        )
        for s in skipped
    ]
