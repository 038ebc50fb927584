"""Reports built once per session from the really trained fixture models, and a dataset
folder that looks collected (a real `manifest.sqlite`, written through the collect code)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

import photoclass
from photoclass.collecting.flickr import Photo
from photoclass.collecting.manifest import ATTRIBUTION, MANIFEST, Manifest, Outcome
from photoclass.collecting.validate import Checked
from photoclass.evaluation.evaluate import Evaluation

LICENSES = {4: ("Attribution License", "https://creativecommons.org/licenses/by/2.0/"),
            5: ("Attribution-ShareAlike License", "https://creativecommons.org/licenses/by-sa/2.0/")}  # fmt: skip


class Built(NamedTuple):
    path: Path
    html: str
    evaluation: Evaluation


def _photo(n: int, license: int) -> Photo:
    return Photo(id=str(n), owner=f"{n}@N00", owner_name=f"owner {n}", title=f"photo {n}",
                 license=license, uploaded=1_600_000_000, url=f"https://live.example/{n}.jpg",
                 size="c", width=800, height=600)  # fmt: skip


def write_manifest(root: Path) -> None:
    """Per class: 5 train and 10 val photos kept, 2 duplicates and 1 corrupt file rejected, 1
    download failed. Cats are CC BY, owls CC BY-SA."""
    with Manifest(root / MANIFEST) as manifest:
        manifest.save_licenses(LICENSES)
        for c, (name, license) in enumerate((("cat", 4), ("owl", 5))):
            photos = [_photo(1000 * (c + 1) + i, license) for i in range(19)]
            manifest.add(name, name, photos, limit=len(photos))
            ok = Checked(width=800, height=600, sha256="0" * 64, phash="0" * 16)
            outcomes = [Outcome(p.id, "ok", None, ok, 1) for p in photos[:15]]
            outcomes += [Outcome(p.id, "rejected", "duplicate", None, 1) for p in photos[15:17]]
            outcomes += [Outcome(photos[17].id, "rejected", "corrupt", None, 1)]
            outcomes += [Outcome(photos[18].id, "failed", "timeout", None, 3)]
            manifest.record(outcomes)
            manifest.set_splits({p.id: "train" if i < 5 else "val" for i, p in enumerate(photos[:15])})
        manifest.write_attribution(root / ATTRIBUTION)


@pytest.fixture(scope="session")
def collected(tmp_path_factory: pytest.TempPathFactory, cats_owls_tiny: Path) -> Path:
    """The tiny cats-owls validation photos in a folder that `collect` could have made."""
    root = tmp_path_factory.mktemp("collected")
    shutil.copytree(cats_owls_tiny / "val", root / "val", symlinks=True)
    write_manifest(root)
    return root


def _build(model: Path, split: Path, out: Path) -> Built:
    evaluation = photoclass.evaluate(model, split, report_out=out, progress=False)
    return Built(out, out.read_text(encoding="utf-8"), evaluation)


@pytest.fixture(scope="session")
def binary_report(tmp_path_factory: pytest.TempPathFactory, trained_binary: Path, collected: Path) -> Built:
    return _build(trained_binary, collected / "val", tmp_path_factory.mktemp("reports") / "binary.html")


@pytest.fixture(scope="session")
def three_report(tmp_path_factory: pytest.TempPathFactory, trained_three: Path, shapes3: Path) -> Built:
    return _build(trained_three, shapes3 / "test", tmp_path_factory.mktemp("reports") / "three.html")
