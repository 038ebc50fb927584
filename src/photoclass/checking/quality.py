"""Image quality: the kinds cleanvision's Imagelab reports (dark, light, blurry, low
information, odd aspect ratio, odd size, grayscale), with its default thresholds.

The pixel statistics are measured on the photos as decoded for the model (photoclass's cache,
so no photo is read twice), reduced to 64 px: cleanvision measures blur at that size too,
and brightness percentiles need no more. Aspect ratio and size come from the file's header,
before any resizing. These findings are advice: a dark or grayscale photo of the right class
is still a right example, so a fix never moves them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from photoclass.checking.findings import Finding, Kind
from photoclass.checking.layout import Photo
from photoclass.progress import NO_PROGRESS, Progress

SIDE = 64  # pixels: the side photos are reduced to before measuring
# Perceived brightness of a pixel (cleanvision's weights), 0 (black) to 1 (white).
LUMA = np.array([0.241, 0.691, 0.068], np.float32)
DARK = 0.32  # dark: even the brightest 1% of pixels are dimmer than this
LIGHT = 0.95  # light: even the darkest 5% of pixels are brighter than this
# blurry: cleanvision's edge score, 1 - exp(-0.01 x the spread of the edge image), below 0.29.
# (cleanvision adds a term for peaked histograms so that a plain image is not called blurry;
# that term also hid heavily blurred photos, so here a plain image is left to low_information.)
BLURRY = 0.29
BLUR_SCALE = 0.01
LOW_INFORMATION = 3.0  # bits: entropy of the colour histogram (a photo has 7-9.5)
ODD_ASPECT = 0.35  # shorter side / longer side: a panorama or a strip
# odd size: sqrt(width x height) more than 3 interquartile ranges outside the middle half of
# the dataset's, on a log scale (sizes are skewed: on a linear one the lower fence is often
# negative), and at least 2x from the median (else a dataset of one size flags any other).
ODD_SIZE_IQR = 3.0
ODD_SIZE_FACTOR = 2.0
GRAYSCALE = 6  # levels of 255: the spread between colour channels, 99th percentile of pixels

KINDS = [
    Kind("dark", "Too dark", "quality", False, f"the brightest 1% of pixels below {DARK:.0%} brightness"),
    Kind("light", "Too light", "quality", False, f"the darkest 5% of pixels above {LIGHT:.0%} brightness"),
    Kind(
        "blurry",
        "Blurry",
        "quality",
        False,
        f"cleanvision's edge score below {BLURRY} (edges measured at {SIDE} px; 0 = no edges at all); "
        "plain images are low information instead",
    ),
    Kind(
        "low_information",
        "Low information",
        "quality",
        False,
        f"colour histogram entropy below {LOW_INFORMATION:g} bits (photos have 7 to 9.5): blank or nearly uniform",
    ),
    Kind(
        "odd_aspect_ratio",
        "Odd aspect ratio",
        "quality",
        False,
        f"the shorter side under {ODD_ASPECT:.0%} of the longer one",
    ),
    Kind(
        "odd_size",
        "Odd size",
        "quality",
        False,
        f"sqrt(width x height) more than {ODD_SIZE_IQR:g} interquartile ranges outside the middle half of the "
        f"dataset's (log scale) and at least {ODD_SIZE_FACTOR:g}x from its median",
    ),
    Kind(
        "grayscale",
        "Grayscale",
        "quality",
        False,
        f"99% of pixels have colour channels within {GRAYSCALE} levels (of 255) of each other",
    ),
]


@dataclass(frozen=True)
class Measures:
    """Per photo: the statistics the thresholds apply to (NaN where a photo was not decoded)."""

    bright_p99: np.ndarray
    bright_p5: np.ndarray
    blur: np.ndarray
    entropy: np.ndarray
    channel_spread: np.ndarray
    aspect: np.ndarray  # shorter / longer side
    size: np.ndarray  # sqrt(width x height), pixels


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from the file's header, without decoding it; None if unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # any file, any failure: the unreadable-file check says why
        return None


def measure(
    images: np.ndarray,
    decoded: list[int],
    sizes: list[tuple[int, int] | None],
    progress: Progress = NO_PROGRESS,
) -> Measures:
    """Statistics of every photo; `images[i]` is photo `decoded[i]`, `sizes` covers all photos."""
    n = len(sizes)
    stats = np.full((5, n), np.nan, np.float32)
    with progress.task("image quality", len(decoded)) as bar:
        for pixels, i in zip(images, decoded, strict=True):
            stats[:, i] = _pixel_stats(np.asarray(pixels))
            bar.advance()
    dims = np.array([s if s else (np.nan, np.nan) for s in sizes], np.float64).reshape(n, 2)
    with np.errstate(invalid="ignore"):
        aspect = dims.min(1) / dims.max(1)
    return Measures(*stats, aspect=aspect, size=np.sqrt(dims[:, 0] * dims[:, 1]))


def _pixel_stats(pixels: np.ndarray) -> tuple[float, float, float, float, float]:
    image = Image.fromarray(pixels)
    entropy = image.entropy()  # of the full-size picture, as cleanvision measures it
    small = image.resize((SIDE, SIDE), Image.Resampling.BOX)
    rgb = np.asarray(small, np.float32)
    brightness = np.sqrt((rgb * rgb) @ LUMA) / 255
    p5, p99 = np.percentile(brightness, [5, 99])
    edges = np.asarray(small.convert("L").filter(ImageFilter.FIND_EDGES), np.float32)
    blur = 1 - np.exp(-BLUR_SCALE * edges.std())
    spread = np.percentile(rgb.max(-1) - rgb.min(-1), 99)
    return float(p99), float(p5), float(blur), float(entropy), float(spread)


def _beyond(score: float, threshold: float) -> float:
    """Confidence of a "below `threshold` is bad" finding: 0.5 at the threshold, 1 at zero."""
    return 0.5 + 0.5 * min(1.0, max(0.0, float(threshold - score) / threshold))


def quality_findings(photos: list[Photo], m: Measures) -> list[Finding]:
    """A finding per photo and kind whose statistic crosses its threshold."""
    return [
        Finding(
            kind, photos[i].path, confidence, action, detail, split=photos[i].split, label=photos[i].label
        )
        for i, kind, confidence, detail, action in [*_pixel_flags(m), *_size_flags(m.size)]
    ]


Flag = tuple[int, str, float, str, str]  # photo index, kind, confidence, detail, action


def _pixel_flags(m: Measures) -> Iterator[Flag]:
    review = "look at it: replace it if the subject cannot be made out, else keep it"
    for i in np.flatnonzero(m.bright_p99 < DARK):
        yield (
            i,
            "dark",
            _beyond(m.bright_p99[i], DARK),
            f"brightest 1% at {m.bright_p99[i]:.0%} brightness",
            review,
        )
    for i in np.flatnonzero(m.bright_p5 > LIGHT):
        confidence = _beyond(1 - m.bright_p5[i], 1 - LIGHT)
        yield i, "light", confidence, f"darkest 5% at {m.bright_p5[i]:.0%} brightness", review
    for i in np.flatnonzero((m.blur < BLURRY) & (m.entropy >= LOW_INFORMATION)):
        yield i, "blurry", _beyond(m.blur[i], BLURRY), f"blur score {m.blur[i]:.3f}", review
    for i in np.flatnonzero(m.entropy < LOW_INFORMATION):
        yield (
            i,
            "low_information",
            _beyond(m.entropy[i], LOW_INFORMATION),
            f"entropy {m.entropy[i]:.2f} bits",
            "remove it unless a nearly uniform image is a real example of its class",
        )
    for i in np.flatnonzero(m.aspect < ODD_ASPECT):
        yield (
            i,
            "odd_aspect_ratio",
            _beyond(m.aspect[i], ODD_ASPECT),
            f"shorter side {m.aspect[i]:.0%} of the longer",
            "crop it around the subject: the model sees it squashed into a square",
        )
    for i in np.flatnonzero(m.channel_spread <= GRAYSCALE):
        yield (
            i,
            "grayscale",
            _beyond(m.channel_spread[i], GRAYSCALE + 1),
            f"channels within {m.channel_spread[i]:.0f} levels",
            "keep it unless colour tells the classes apart (then the model cannot use it here)",
        )


def _size_flags(size: np.ndarray) -> Iterator[Flag]:
    known = np.log(size[np.isfinite(size) & (size > 0)])
    if len(known) < 4:  # quartiles of a handful of photos say nothing
        return
    q1, middle, q3 = np.percentile(known, [25, 50, 75])
    median = float(np.exp(middle))
    low = float(np.exp(min(q1 - ODD_SIZE_IQR * (q3 - q1), middle - np.log(ODD_SIZE_FACTOR))))
    high = float(np.exp(max(q3 + ODD_SIZE_IQR * (q3 - q1), middle + np.log(ODD_SIZE_FACTOR))))
    detail = "{:.0f} px (sqrt of the area; the median is " + f"{median:.0f})"
    for i in np.flatnonzero(size < low):
        yield (
            i,
            "odd_size",
            _beyond(size[i], low),
            detail.format(size[i]),
            "replace it with a larger copy: it is enlarged for the model and loses detail",
        )
    for i in np.flatnonzero(size > high):
        yield (
            i,
            "odd_size",
            0.5 + 0.5 * min(1.0, (size[i] - high) / high),
            detail.format(size[i]),
            "nothing to do for training (it is resized); check that it is a photo like the others",
        )
