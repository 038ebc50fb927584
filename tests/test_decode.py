"""Every kind of bad or unusual image: unreadable ones are skipped with a reason, odd modes
and orientations are converted correctly."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoclass.data.cache import cache_dir, decode_all, evict
from photoclass.data.decode import UnreadableImage, decode_image


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def damaged_png() -> bytes:
    """A PNG whose header is fine but whose compressed pixel data is zeroed."""
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    start = data.index(b"IDAT") + 40
    data[start : start + 200] = bytes(200)
    return bytes(data)


def red_left_blue_right(w: int = 80, h: int = 40) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<html><body>503 Service Unavailable</body></html>", "not an image"),
        (b"", "not an image"),
        (jpeg_bytes(red_left_blue_right(400, 300))[:600], "truncated"),
        (damaged_png(), "corrupt"),
    ],
    ids=["html-page", "empty", "truncated", "corrupt"],
)
def test_unreadable_files_raise_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(UnreadableImage, match=reason):
        decode_image(path, 32)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (15_000, 15_000)).save(path)  # a few kB on disk, 225 megapixels decoded
    assert path.stat().st_size < 200_000
    with pytest.raises(UnreadableImage, match="decompression-bomb"):
        decode_image(path, 32)


def test_large_photo_decodes(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    red_left_blue_right(6000, 4000).save(path, quality=80)  # 24 MP, a modern camera
    pixels = decode_image(path, 64)
    assert pixels.shape == (64, 64, 3)
    assert pixels[32, 5].tolist() == pytest.approx([255, 0, 0], abs=12)


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "I;16"])
def test_modes_convert_to_rgb(tmp_path: Path, mode: str) -> None:
    src = red_left_blue_right()
    img = (
        src.convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.asarray(src.convert("L"), np.uint16) * 257)
    )
    path = tmp_path / f"img.{'tif' if mode in ('I;16', 'CMYK') else 'png'}"
    img.save(path)
    pixels = decode_image(path, 20)
    assert pixels.shape == (20, 20, 3) and pixels.dtype == np.uint8
    left, right = pixels[10, 2].astype(int), pixels[10, 17].astype(int)
    if mode in ("L", "I;16"):
        assert left[0] == left[1] == left[2] and left[0] != right[0]
    else:
        assert left[0] > 200 and left[2] < 60 and right[2] > 200 and right[0] < 60


def test_transparent_png_is_composited_on_white(tmp_path: Path) -> None:
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[:, :10] = (0, 0, 0, 0)  # fully transparent: white, not black
    arr[:, 10:] = (0, 255, 0, 255)
    path = tmp_path / "alpha.png"
    Image.fromarray(arr, "RGBA").save(path)
    palette = tmp_path / "palette.png"
    Image.fromarray(arr, "RGBA").convert("P").save(palette, transparency=0)
    pixels = decode_image(path, 20)
    assert pixels[10, 2].tolist() == [255, 255, 255]
    assert pixels[10, 17].tolist() == [0, 255, 0]
    assert decode_image(palette, 20).shape == (20, 20, 3)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    img = red_left_blue_right(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    pixels = decode_image(path, 40)
    # Displayed upright, red is on top and blue at the bottom.
    assert pixels[2, 20, 0] > 200 and pixels[2, 20, 2] < 60
    assert pixels[37, 20, 2] > 200 and pixels[37, 20, 0] < 60


def test_decode_all_skips_and_reports_bad_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOCLASS_CACHE", str(tmp_path / "cache"))
    good = tmp_path / "good.jpg"
    red_left_blue_right().save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    first = decode_all([bad, good, bad], 16)
    assert first.ok == [1] and first.images.shape == (1, 16, 16, 3)
    assert [s["reason"] for s in first.skipped] == ["not an image (unrecognised format)"] * 2
    again = decode_all([bad, good, bad], 16)  # served from the cache
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(again.images, first.images) and again.skipped == first.skipped


def test_the_cache_drops_the_least_recently_used_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOCLASS_CACHE", str(tmp_path / "cache"))
    photo = tmp_path / "p.jpg"
    red_left_blue_right().save(photo)
    sizes = (16, 24, 32)
    for size in sizes:
        decode_all([photo], size)
    arrays = {
        size: next(p for p in cache_dir().glob("*.npy") if np.load(p).shape[1] == size) for size in sizes
    }
    for age, size in enumerate(sizes):  # 16 oldest, 32 newest
        os.utime(arrays[size], ns=(10**9 * (age + 1),) * 2)
    decode_all([photo], 16)  # a hit: 16 becomes the most recently used
    one = arrays[24].stat().st_size
    assert evict(cache_dir(), keep=arrays[32], limit_gb=2.5 * one / 1e9) == [arrays[24]]
    assert not arrays[24].with_suffix(".json").exists()
    assert evict(cache_dir(), keep=arrays[32], limit_gb=0) == [arrays[16]]  # never the one in use
    assert sorted(cache_dir().glob("*.npy")) == [arrays[32]]
    monkeypatch.setenv("PHOTOCLASS_CACHE_GB", "0")  # every new array evicts all the others
    decode_all([photo], 40)
    assert [np.load(p).shape[1] for p in cache_dir().glob("*.npy")] == [40]
