"""A collected dataset's manifest (`DATA/manifest.sqlite`, `photoclass.collecting.manifest`)
against its folder: every photo the manifest keeps should be at `split/class/<id>.jpg`, and
every photo in the folder should be one the manifest keeps.

A photo moved into another split breaks what the split guarantees (no near-duplicate and no
photographer on both sides); one moved into another class may be a deliberate relabelling,
or a slip; a missing one is downloaded again by the next `collect`; an unlisted one was
added by hand or rejected by `collect`. None is moved by a fix: each needs a person's choice.

The manifest is read here, and `fix` records the photos it quarantines in it (status
`rejected`, error `check: <kind>`, so that `collect` neither re-downloads nor counts them)
and `undo` restores the rows it changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from photoclass.checking.findings import Finding, Kind
from photoclass.checking.layout import Photo
from photoclass.collecting.manifest import MANIFEST
from photoclass.errors import DatasetError

KINDS = [
    Kind(
        "missing_file", "Missing files", "manifest", False, "kept in the manifest, with no file in the folder"
    ),
    Kind(
        "unlisted_file",
        "Unlisted files",
        "manifest",
        False,
        "a file in the folder that the manifest does not keep (unknown to it, or rejected by collect)",
    ),
    Kind(
        "split_mismatch",
        "Split mismatches",
        "manifest",
        False,
        "a photo in another split than the manifest assigned it",
    ),
    Kind(
        "class_mismatch",
        "Class mismatches",
        "manifest",
        False,
        "a photo in another class folder than the one it was collected for",
    ),
]
QUARANTINED = "check: {kind}"  # the manifest's `error` for a photo a fix moved


@contextmanager
def _open(root: Path) -> Iterator[sqlite3.Connection]:
    try:
        with closing(sqlite3.connect(root / MANIFEST)) as db:
            db.row_factory = sqlite3.Row
            yield db
    except sqlite3.DatabaseError as e:
        raise DatasetError(
            f"{root / MANIFEST} is not a manifest photoclass can read ({e}); move it out of {root} "
            "to check the folder without it"
        ) from None


def has_manifest(root: Path) -> bool:
    return (root / MANIFEST).is_file()


def manifest_rows(root: Path, ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """id -> {status, error, split, class} of every photo (or of `ids`) in the manifest."""
    with _open(root) as db:
        rows = db.execute("SELECT id, class, split, status, error FROM photos").fetchall()
    wanted = None if ids is None else set(ids)
    return {r["id"]: dict(r) for r in rows if wanted is None or r["id"] in wanted}


def update_rows(root: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Set status, error and split of the given rows (each with its `id`), in one transaction."""
    with _open(root) as db, db:
        db.executemany(
            "UPDATE photos SET status = :status, error = :error, split = :split WHERE id = :id", rows
        )


def home(root: Path, row: dict[str, Any]) -> Path | None:
    """Where `collect` put a photo of the manifest (None before it has a split)."""
    return root / row["split"] / row["class"] / f"{row['id']}.jpg" if row["split"] else None


def manifest_findings(root: Path, photos: list[Photo]) -> list[Finding]:
    """Every disagreement between `root/manifest.sqlite` and the files; none without a manifest."""
    if not has_manifest(root):
        return []
    rows = manifest_rows(root)
    by_name: dict[str, list[Photo]] = {}
    for photo in photos:
        by_name.setdefault(photo.path.name, []).append(photo)
    findings: list[Finding] = []
    accounted: set[Path] = set()
    for row in rows.values():
        expected = home(root, row)
        if row["status"] != "ok" or expected is None:  # not kept, or not placed yet
            continue
        found = by_name.get(expected.name, [])
        if not found:
            findings.append(
                Finding(
                    "missing_file",
                    expected,
                    1.0,
                    "run `collect` again with the same options: it downloads missing photos again",
                    "the manifest keeps it, the folder lacks it",
                    split=row["split"],
                    label=row["class"],
                )
            )
            continue
        for p in found:  # where it belongs, and any copy elsewhere
            accounted.add(p.path)
            if p.path != expected:
                findings.append(_misplaced(p, row))
    for p in photos:
        if p.path not in accounted:
            row = rows.get(p.path.stem)
            known = "not in the manifest"
            if row is not None:
                known = f"the manifest has it as {row['status']}" + (
                    f" ({row['error']})" if row["error"] else ""
                )
            findings.append(
                Finding(
                    "unlisted_file",
                    p.path,
                    1.0,
                    "keep it if you added it on purpose (check and train read any photo); "
                    "remove it if collect rejected it",
                    known,
                    split=p.split,
                    label=p.label,
                )
            )
    return findings


def _misplaced(p: Photo, row: dict[str, Any]) -> Finding:
    where = f"{row['split']}/{row['class']}/"
    if p.split != row["split"]:
        return Finding(
            "split_mismatch",
            p.path,
            1.0,
            f"move it back to {where}: the split keeps near-duplicates and each photographer on one side",
            f"the manifest puts it in {where}",
            split=p.split,
            label=p.label,
        )
    return Finding(
        "class_mismatch",
        p.path,
        1.0,
        f"nothing to do if you relabelled it on purpose; otherwise move it back to {where}",
        f"collected for {row['class']}",
        split=p.split,
        label=p.label,
    )
