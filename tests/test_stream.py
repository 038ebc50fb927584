"""Data larger than the decode cache: training streams it (each photo decoded when a batch
needs it) instead of decoding it all ahead, and learns exactly what it learns from the cache."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import photoclass
from photoclass.data.cache import check_all, decode_all, fits_in_cache
from photoclass.data.decode import LazyPixels
from photoclass.errors import DatasetError

from .helpers import TINY

PHOTO_BYTES = 48 * 48 * 3  # one photo decoded at TINY's image size
OPTIONS = {**TINY, "epochs": 1, "seed": 4}


@pytest.fixture(scope="module")
def shapes_with_bad_photos(shapes3: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("stream") / "data"
    shutil.copytree(shapes3, data)
    (data / "train" / "circle" / "page.jpg").write_text("<html>Not Found</html>")
    good = (data / "train" / "square" / "square-0.jpg").read_bytes()
    (data / "val" / "square" / "cut.jpg").write_bytes(good[: len(good) // 3])
    return data


@pytest.fixture(scope="module")
def cached(shapes_with_bad_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model trained from the decode cache (under its default cap)."""
    out = tmp_path_factory.mktemp("cached") / "model"
    result = photoclass.train(shapes_with_bad_photos, out, progress=False, **OPTIONS)
    assert result.meta["data"]["pixels"] == {"train": "cache", "val": "cache"}
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cap_photos", "pixels"),
    [
        (60, {"train": "stream", "val": "cache"}),  # validation (31 photos) alone fits
        (0, {"train": "stream", "val": "stream"}),
    ],
)
def test_data_larger_than_the_cache_streams_to_the_same_model(
    cap_photos: int,
    pixels: dict[str, str],
    shapes_with_bad_photos: Path,
    cached: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "stream-cache"
    monkeypatch.setenv("PHOTOCLASS_CACHE", str(cache))
    monkeypatch.setenv("PHOTOCLASS_CACHE_GB", str(cap_photos * PHOTO_BYTES / 1e9))
    logger = logging.getLogger("photoclass")  # the CLI's tests may have stopped its propagation
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="photoclass"):
            streamed = photoclass.train(
                shapes_with_bad_photos, tmp_path / "streamed", progress=False, **OPTIONS
            )
    finally:
        logger.removeHandler(caplog.handler)
    assert streamed.meta["data"]["pixels"] == pixels
    assert "streaming: 122 photos decoded at 48 px would take 0.00 GB, more than" in caplog.text
    # Nothing of the training set was decoded ahead: at most validation's pixels are cached.
    arrays = sorted(cache.rglob("*.npy")) if cache.exists() else []
    assert [np.load(a, mmap_mode="r").shape[0] for a in arrays] == ([30] if pixels["val"] == "cache" else [])
    # The same pixels, the same photos skipped (found by the check), the same model.
    meta = json.loads((cached / "photoclass.json").read_text())
    assert streamed.meta["skipped"] == meta["skipped"]
    assert [Path(s["path"]).name for s in streamed.meta["skipped"]] == ["page.jpg", "cut.jpg"]
    assert streamed.meta["history"][-1]["val_loss"] == meta["history"][-1]["val_loss"]
    a, b = (load_file(m / "model.safetensors") for m in (cached, tmp_path / "streamed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_check_finds_what_decoding_finds(shapes_with_bad_photos: Path) -> None:
    photos = sorted(shapes_with_bad_photos.rglob("*.jpg"))
    assert len(photos) >= 64  # enough for the pool of processes
    decoded = decode_all(photos, 48, use_cache=False)
    assert check_all(photos) == (decoded.ok, decoded.skipped)
    assert {s["reason"] for s in decoded.skipped} == {
        "not an image (unrecognised format)",
        "truncated image (file ends early)",
    }


def test_lazy_pixels_decode_what_the_cache_holds(shapes3: Path, tmp_path: Path) -> None:
    photos = sorted((shapes3 / "val").rglob("*.jpg"))[:5]
    cached = decode_all(photos, 40, use_cache=False).images
    lazy = LazyPixels(photos, 40)
    assert len(lazy) == 5 and lazy.shape == cached.shape
    assert np.array_equal(lazy[3], cached[3])
    assert isinstance(lazy[1:4], LazyPixels)  # slices decode only when read
    assert np.array_equal(np.array(lazy[1:4]), cached[1:4])
    assert np.array(lazy[5:]).shape == (0, 40, 40, 3)
    changed = tmp_path / "changed.jpg"
    shutil.copy(photos[0], changed)
    lazy = LazyPixels([changed], 40)
    changed.write_bytes(b"no longer a photo")
    with pytest.raises(DatasetError, match="changed.jpg no longer decodes .* it changed during training"):
        lazy[0]


def test_the_cache_cap_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOCLASS_CACHE_GB", "1")
    assert fits_in_cache(1000, 224)  # 0.15 GB
    assert not fits_in_cache(10_000, 224)  # 1.5 GB
    monkeypatch.delenv("PHOTOCLASS_CACHE_GB")
    assert fits_in_cache(100_000, 224) and not fits_in_cache(200_000, 224)  # the 20 GB default
