"""Evaluation on a labelled folder (`SPLIT/<class>/*.jpg`): every number `metrics.py` knows,
with the per-photo predictions kept for the report (mistakes gallery, ROC curve)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photoclass.bundle import Bundle
from photoclass.data.cache import decode_all
from photoclass.data.folder import scan_split
from photoclass.errors import DatasetError
from photoclass.evaluation.metrics import compute_metrics
from photoclass.prediction.inference import logits_for, probabilities
from photoclass.progress import NO_PROGRESS, Progress


@dataclass
class Evaluation:
    """Metrics plus what they were computed from: one row per readable photo."""

    metrics: dict[str, Any]
    paths: list[str]
    labels: np.ndarray  # true class index per photo
    probs: np.ndarray  # (n, k) class probabilities
    skipped: list[dict[str, str]]

    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])

    def save(self, path: Path) -> Path:
        """Write `metrics.json` (metrics, skipped files, and per-photo predictions)."""
        classes = self.metrics["classes"]
        rows = [
            {
                "path": p,
                "label": classes[int(t)],
                "predicted": classes[int(pr.argmax())],
                "probability": float(pr.max()),
            }
            for p, t, pr in zip(self.paths, self.labels, self.probs, strict=True)
        ]
        payload = {**self.metrics, "skipped": self.skipped, "predictions": rows}
        path.write_text(json.dumps(payload, indent=2))
        return path


def evaluate_split(
    bundle: Bundle, split_dir: Path, *, follow_symlinks: bool = False, progress: Progress = NO_PROGRESS
) -> Evaluation:
    """Run `bundle` over every photo in `split_dir/<class>/` and score it (symlinks leading
    outside `split_dir` are skipped unless `follow_symlinks=True`)."""
    samples = scan_split(Path(split_dir), bundle.classes, follow_symlinks=follow_symlinks)
    decoded = decode_all([s.path for s in samples], bundle.image_size, progress=progress)
    if not decoded.ok:
        raise DatasetError(f"no readable photo in {split_dir}; add photos that open as images")
    labels = np.asarray([samples[i].label for i in decoded.ok], dtype=np.int64)
    logits = logits_for(
        bundle.model,
        decoded.images,
        bundle.normalize,
        compute=bundle.compute,
        progress=progress,
        description="evaluating",
    )
    probs = probabilities(logits)
    metrics = compute_metrics(labels, probs, bundle.classes)
    metrics["split"] = str(Path(split_dir).resolve())
    paths = [str(samples[i].path) for i in decoded.ok]
    return Evaluation(metrics, paths, labels, probs, decoded.skipped)
