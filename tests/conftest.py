"""Shared fixtures: small real datasets and small, really trained models.

The cats-owls photos are read in place from ../shared/data (their licence is unknown: never
copied into the repo); datasets built here hold copies of them in a temporary folder (not
symlinks, which photoclass does not follow out of a data folder unless told to; not hard links,
through which a test that damages a photo would damage the original).

A clone on its own (no ../shared beside it, as anyone cloning from a forge gets it) still
passes: `cats_owls_sample` then draws stand-ins (the simulator's synthetic cats and owls), and
a test that needs the real photos themselves (`shared_data`, `require_real_photos`, or
anything that reads under `SHARED_DATA`) is skipped with one reason line; the end of the run
says how many. `.ci/run` sets PHOTOCLASS_REQUIRE_SHARED=1, which turns each such skip into a
failure, since CI has ../shared."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from .helpers import TINY

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOTOCLASS_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data" / "cats-owls"
REQUIRE_SHARED = os.environ.get("PHOTOCLASS_REQUIRE_SHARED") == "1"


def _shown(path: Path) -> str:
    """`path` as a newcomer reads it: relative to the checkout when it is beside it."""
    return os.path.relpath(path, REPO) if path.is_relative_to(REPO.parent) else str(path)


MISSING = (
    f"real photos not found at {_shown(SHARED / 'data')}; put the shared/ folder beside the "
    "checkout or set PHOTOCLASS_SHARED to run this test"
)


def real_photos() -> bool:
    return all((SHARED_DATA / split / cls).is_dir() for split in ("train", "val") for cls in ("cat", "owl"))


def require_real_photos() -> Path:
    """`SHARED_DATA`, or skip the calling test with the one reason line (a failure under
    PHOTOCLASS_REQUIRE_SHARED=1)."""
    if real_photos():
        return SHARED_DATA
    if REQUIRE_SHARED:
        pytest.fail(f"PHOTOCLASS_REQUIRE_SHARED=1 but {MISSING}", pytrace=False)
    pytest.skip(f"skipped: {MISSING}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The 2,500 real cats-owls photos, read in place (the test is skipped without them)."""
    return require_real_photos()


def _skip_if_real_photos_missing(error: FileNotFoundError) -> None:
    """A test (or fixture) that read under SHARED_DATA on a clone without it is skipped like
    one that asked `require_real_photos`, not failed with a traceback."""
    name = error.filename
    if name is not None and not real_photos() and Path(os.fsdecode(name)).is_relative_to(SHARED):
        require_real_photos()


@pytest.hookimpl(wrapper=True)
def _skipping_missing_real_photos(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except FileNotFoundError as e:
        _skip_if_real_photos_missing(e)
        raise


# Around each test's set-up (its fixtures) and its body.
pytest_runtest_setup = pytest_runtest_call = _skipping_missing_real_photos


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if MISSING in str(r.longrepr)]
    where = _shown(SHARED / "data")
    if real_photos():
        terminalreporter.write_line(f"real photos: {where}; 0 tests skipped for missing real photos")
    else:
        terminalreporter.write_line(
            f"real photos not found at {where}: {len(skipped)} tests skipped for missing real photos; "
            "the others ran on drawn stand-ins"
        )


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test session decodes into its own cache, never the user's ~/.cache.
    monkeypatch.setenv("PHOTOCLASS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def cats_owls_sample(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """`root/<split>/<class>/` with copies of `n` real photos per class and split (drawn
    stand-ins on a clone without the real photos)."""
    if not real_photos():
        if REQUIRE_SHARED:
            pytest.fail(f"PHOTOCLASS_REQUIRE_SHARED=1 but {MISSING}", pytrace=False)
        return _stand_in_sample(root, per_class, seed)
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


def _stand_in_sample(root: Path, per_class: dict[str, int], seed: int) -> Path:
    """Like `cats_owls_sample`, with the simulator's synthetic "cat" and "owl" photos (JPEGs
    of varied sizes and aspect ratios, learnable, as real photos are) in place of real ones."""
    from photoclass.sim.corpus import render_jpeg

    for cls in ("cat", "owl"):
        start = 0
        for split, n in per_class.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(start, start + n):
                jpeg = render_jpeg(cls, index, 320, classes=("cat", "owl"), seed=seed)
                (folder / f"{cls}.{index}.jpg").write_bytes(jpeg)
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
