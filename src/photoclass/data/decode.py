"""Decode one photo into a square uint8 RGB array, or say exactly why it cannot be read.

Kept free of torch so decoding worker processes start fast."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from photoclass.errors import DatasetError

# Deliberately higher than PIL's default (89 MP) so 100-MP camera photos load, yet still a
# guard against decompression bombs: a 30 kB PNG can claim to be 50,000 x 50,000 pixels.
MAX_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class UnreadableImage(Exception):
    """A file that is not a decodable photo; `str(e)` is the reason shown to the user."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB, compositing transparency onto white rather than black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")  # convert would copy an RGB image


def _fit(dims: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is `side`."""
    scale = side / max(dims)
    return max(1, round(dims[0] * scale)), max(1, round(dims[1] * scale))


def decode_image(source: Path | bytes, size: int, *, keep_aspect: bool = False) -> np.ndarray:
    """A photo file (or its bytes) as a (size, size, 3) uint8 array: EXIF-rotated, RGB, resized
    (squashed, as Keras' `target_size` does, so nothing at the edges is cropped away).

    `keep_aspect=True` scales it so its longer side is `size` instead, for thumbnails that a
    person looks at."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
                # JPEG only: let libjpeg scale down by 1/2..1/8 while decoding (several
                # times faster for large photos); the result stays >= size on both sides.
                img.draft("RGB", (size, size))
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # not a copy when nothing turns
                target = _fit(img.size, size) if keep_aspect else (size, size)
                rgb = _to_rgb(img).resize(target, Image.Resampling.BILINEAR)
                return np.array(rgb, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImage(
            f"larger than {MAX_PIXELS // 1_000_000} megapixels (decompression-bomb guard)"
        ) from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        message = str(e).split("\n")[0]
        if "truncated" in message.lower():
            raise UnreadableImage("truncated image (file ends early)") from None
        raise UnreadableImage(f"corrupt image ({message})") from None


def try_decode(job: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    """`decode_image` for a worker pool: (pixels, None) or (None, reason)."""
    path, size = job
    try:
        return decode_image(Path(path), size), None
    except UnreadableImage as e:
        return None, str(e)


class LazyPixels:
    """Photos that read like the decode cache's (N, size, size, 3) uint8 array but are decoded
    when they are read: `pixels[i]` decodes photo i; `pixels[a:b]` is a `LazyPixels` of photos
    a to b-1, which `np.array(pixels[a:b])` decodes. The
    training loop uses it for data sets too large for the cache: DataLoader workers then decode
    each photo of a batch as they augment it, and memory holds a few batches, not the data set.
    The photos were checked (`photoclass.data.cache.check_all`); one that no longer decodes
    is a `DatasetError` naming it."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.size, self.size, 3)

    def __getitem__(self, index: int | slice) -> np.ndarray | LazyPixels:
        if isinstance(index, slice):
            return LazyPixels(self.paths[index], self.size)
        return self._decode(self.paths[index])

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        rows = [self._decode(p) for p in self.paths]
        return np.stack(rows) if rows else np.empty(self.shape, np.uint8)

    def _decode(self, path: Path) -> np.ndarray:
        try:
            return decode_image(path, self.size)
        except UnreadableImage as e:
            raise DatasetError(
                f"{path} no longer decodes ({e}); it changed during training: restore it or remove it"
            ) from None
