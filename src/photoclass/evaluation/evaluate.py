"""Evaluation on a labelled folder (`SPLIT/<class>/*.jpg`): every number `metrics.py` knows,
with the per-photo predictions kept for the report (mistakes gallery, ROC curve)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from photoclass.bundle import Bundle
from photoclass.data.cache import decode_all
from photoclass.data.folder import scan_split
from photoclass.errors import DatasetError
from photoclass.evaluation.metrics import compute_metrics
from photoclass.prediction.inference import probabilities
from photoclass.prediction.predict import model_outputs
from photoclass.progress import NO_PROGRESS, Progress


@dataclass
class Evaluation:
    """Metrics plus what they were computed from: one row per readable photo."""

    metrics: dict[str, Any]
    paths: list[str]
    labels: np.ndarray  # true class index per photo
    probs: np.ndarray  # (n, k) class probabilities, calibrated (`Bundle.temperature`)
    skipped: list[dict[str, str]]
    logits: np.ndarray | None = None  # (n, k) before calibration: the report compares both
    unknown: np.ndarray | None = None  # per photo: looks like none of the classes (None: cannot tell)

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
    bundle: Bundle,
    split_dir: Path,
    *,
    reject_unknown: bool = False,
    follow_symlinks: bool = False,
    progress: Progress = NO_PROGRESS,
) -> Evaluation:
    """Run `bundle` over every photo in `split_dir/<class>/` and score it. The metrics say how
    many photos the unknown flag marks ("unknown"); with `reject_unknown` those photos are left
    out of every other number (the model declined to classify them). Symlinks leading outside
    `split_dir` are skipped unless `follow_symlinks=True`."""
    samples = scan_split(Path(split_dir), bundle.classes, follow_symlinks=follow_symlinks)
    decoded = decode_all([s.path for s in samples], bundle.image_size, progress=progress)
    if not decoded.ok:
        raise DatasetError(f"no readable photo in {split_dir}; add photos that open as images")
    labels = np.asarray([samples[i].label for i in decoded.ok], dtype=np.int64)
    paths = [str(samples[i].path) for i in decoded.ok]
    outputs = model_outputs(bundle, decoded.images, progress=progress, description="evaluating")
    logits, unknown = outputs.logits.numpy(), outputs.unknown
    flagged = None
    if unknown is not None:
        flagged = {"flagged": int(unknown.sum()), "share": float(unknown.mean()), "rejected": reject_unknown}
        if reject_unknown:
            if unknown.all():
                raise DatasetError(
                    f"every photo in {split_dir} looks like none of the classes; evaluate it without `reject_unknown`"
                )
            keep = ~unknown
            labels, logits, paths, unknown = (
                labels[keep],
                logits[keep],
                [p for p, k in zip(paths, keep, strict=True) if k],
                unknown[keep],
            )
    probs = probabilities(torch.from_numpy(logits), bundle.temperature)
    metrics = compute_metrics(labels, probs, bundle.classes)
    metrics["split"] = str(Path(split_dir).resolve())
    if flagged is not None:
        metrics["unknown"] = flagged
    return Evaluation(metrics, paths, labels, probs, decoded.skipped, logits, unknown)
