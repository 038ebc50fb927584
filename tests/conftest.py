"""Shared fixtures: small real datasets and small, really trained models.

The cats-owls photos are read in place from ../shared/data (their licence is unknown: never
copied into the repo); datasets built here hold copies of them in a temporary folder (not
symlinks, which photoclass does not follow out of a data folder unless told to; not hard links,
through which a test that damages a photo would damage the original)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from .helpers import TINY

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PHOTOCLASS_SHARED", REPO.parent / "shared")) / "data" / "cats-owls"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The 2,500 real cats-owls photos, read in place."""
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test session decodes into its own cache, never the user's ~/.cache.
    monkeypatch.setenv("PHOTOCLASS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def cats_owls_sample(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """`root/<split>/<class>/` with copies of `n` real photos per class and split."""
    rng = random.Random(seed)
    for cls in ("cat", "owl"):
        photos = sorted((SHARED_DATA / "train" / cls).iterdir())
        rng.shuffle(photos)
        start = 0
        for split, n in per_class.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for photo in photos[start : start + n]:
                shutil.copyfile(photo, folder / photo.name)
            start += n
    return root


SHAPES = ("circle", "square", "triangle")


def shape_image(shape: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A filled shape at a random place, size and colour over a noisy background."""
    background = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray((background * 0.4).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(v) for v in rng.integers(120, 256, 3))
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


def shapes_dataset(root: Path, classes: tuple[str, ...], per_split: dict[str, int], seed: int = 0) -> Path:
    """A synthetic dataset of drawn shapes, one class per shape, as real JPEG files."""
    rng = np.random.default_rng(seed)
    for split, n in per_split.items():
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape_image(cls, rng).save(folder / f"{cls}-{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def cats_owls_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 training and 10 validation real photos per class."""
    return cats_owls_sample(tmp_path_factory.mktemp("cats-owls"), {"train": 20, "val": 10})


@pytest.fixture(scope="session")
def shapes3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three drawn-shape classes: 30 train, 10 val, 10 test photos each."""
    return shapes_dataset(tmp_path_factory.mktemp("shapes"), SHAPES, {"train": 30, "val": 10, "test": 10})


@pytest.fixture(scope="session")
def trained_binary(tmp_path_factory: pytest.TempPathFactory, cats_owls_tiny: Path) -> Path:
    """A small-cnn really trained (a few seconds) on the tiny cats-owls set."""
    import photoclass

    out = tmp_path_factory.mktemp("models") / "binary"
    photoclass.train(cats_owls_tiny, out, progress=False, **TINY)
    return out


@pytest.fixture(scope="session")
def trained_three(tmp_path_factory: pytest.TempPathFactory, shapes3: Path) -> Path:
    """A small-cnn really trained on three shape classes."""
    import photoclass

    out = tmp_path_factory.mktemp("models") / "three"
    photoclass.train(shapes3, out, progress=False, **{**TINY, "epochs": 8})
    return out
