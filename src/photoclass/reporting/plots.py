"""The report's pictures: matplotlib plots in one style, and photo thumbnails, each as a
data URI so the page needs no other file.

Figures are built with `matplotlib.figure.Figure` (Agg, no pyplot): no global state, no
window, safe anywhere."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure
from PIL import Image

TRAIN, VAL, MUTED = "#3b6fb6", "#e07b39", "#8a8f98"
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e5e8",
    "grid.linewidth": 0.8,
    "axes.edgecolor": "#9aa0a8",
    "legend.frameon": False,
    "lines.linewidth": 1.8,
}
SCALE = 2  # pixels per CSS pixel: sharp on high-density screens


@dataclass(frozen=True)
class Picture:
    """An embedded image and its size on the page (CSS pixels)."""

    uri: str
    width: int
    height: int


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> Picture:
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="png", dpi=100 * SCALE)
    width, height = (round(v * 100) for v in fig.get_size_inches())
    return Picture(_uri("image/png", buffer.getvalue()), width, height)


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail(pixels: np.ndarray, *, quality: int = 80) -> Picture:
    """A (H, W, 3) uint8 photo as an embedded JPEG, shown at its pixel size."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    height, width = pixels.shape[:2]
    return Picture(_uri("image/jpeg", buffer.getvalue()), width, height)


def training_curves(history: Sequence[dict[str, Any]], best: int | None) -> Picture:
    """Loss and accuracy per epoch, training against validation. Epochs are numbered across
    phases; a pretrained model's probe phase (head only, on frozen features) is shaded."""
    x = np.arange(1, len(history) + 1)
    probe = [i for i, row in enumerate(history) if row.get("phase") == "probe"]
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.6, 2.9)
        for ax, key, title in zip(fig.subplots(1, 2), ("loss", "acc"), ("loss", "accuracy"), strict=True):
            if probe:
                ax.axvspan(probe[0] + 0.5, probe[-1] + 1.5, color=MUTED, alpha=0.15, lw=0)
                ax.text(probe[0] + 0.7, 0.97, "probe", transform=ax.get_xaxis_transform(),
                        va="top", color=MUTED)  # fmt: skip
            ax.plot(x, [row[f"train_{key}"] for row in history], color=TRAIN, marker=".", label="train")
            ax.plot(x, [row[f"val_{key}"] for row in history], color=VAL, marker=".", label="validation")
            if best is not None:
                ax.axvline(best + 1, color=MUTED, ls="--", lw=1, label=f"kept (epoch {best + 1})")
            if key == "acc":
                ax.set_ylim(-0.02, 1.02)
                ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.legend(loc="lower right")
        return _png(fig)


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> Picture:
    """Counts per true (rows) and predicted (columns) class, coloured by the share of the row."""
    counts = np.asarray(matrix)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = 1.6 + 0.55 * len(classes)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = _figure(side + 0.8, side)
        ax = fig.subplots()
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (i, j), n in np.ndenumerate(counts):
            ax.text(j, i, f"{n}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "#1d2430")  # fmt: skip
        ticks, crowded = np.arange(len(classes)), len(classes) > 3
        ax.set_xticks(ticks, classes, rotation=30 if crowded else 0, ha="right" if crowded else "center")
        ax.set_yticks(ticks, classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.colorbar(image, ax=ax, shrink=0.8, format=ticker.PercentFormatter(1.0))
        return _png(fig)


def roc_curve(fpr: Sequence[float], tpr: Sequence[float], auc: float, positive: str) -> Picture:
    """True against false positive rate over every threshold, with the area under it."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(3.6, 3.4)
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], color=MUTED, ls="--", lw=1, label="chance")
        ax.plot(fpr, tpr, color=TRAIN, label=f"model (AUC {auc:.3f})")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel(f"true positive rate ({positive})")
        ax.legend(loc="lower right")
        return _png(fig)


def reliability_diagram(curves: dict[str, dict[str, Sequence[float]]]) -> Picture:
    """Accuracy against confidence per confidence bin, one line per named curve (before and
    after calibration), with the diagonal a calibrated model follows; marker area ~ photos."""
    colours = (MUTED, TRAIN, VAL)
    with matplotlib.rc_context(STYLE):
        fig = _figure(3.8, 3.4)
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], color=MUTED, ls="--", lw=1, label="calibrated")
        for colour, (name, rows) in zip(colours[1:], curves.items(), strict=False):
            sizes = [8 + 300 * s for s in rows["share"]]
            ax.plot(rows["confidence"], rows["accuracy"], color=colour, lw=1.2, label=name)
            ax.scatter(rows["confidence"], rows["accuracy"], s=sizes, color=colour, alpha=0.6, lw=0)
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal")
        ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.legend(loc="upper left")
        return _png(fig)
