"""Prediction on new photos: files and folders in, label and probabilities out. A photo that
cannot be read gets its own error row; the others are still predicted."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoclass.bundle import Bundle
from photoclass.data.cache import decode_all
from photoclass.data.folder import Links, walk_files
from photoclass.prediction.inference import logits_for, probabilities
from photoclass.progress import NO_PROGRESS, Progress

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Prediction:
    """One photo's result: the top label and the `top_k` (label, probability) pairs, or an error."""

    path: str
    label: str | None = None
    probability: float | None = None
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def expand_inputs(
    paths: Sequence[Path], *, follow_symlinks: bool = False
) -> tuple[list[Path], list[Prediction]]:
    """Files as given, folders searched recursively for image files; missing paths are errors.

    Inside a folder, a symlink leading outside it is not followed (it gets an error row)
    unless `follow_symlinks=True`; a file named directly is read wherever it lives."""
    files, errors = [], []
    for path in map(Path, paths):
        if path.is_dir():
            links = Links(path, follow_symlinks)
            files += [p for p in walk_files(path, links) if p.suffix.lower() in IMAGE_SUFFIXES]
            reason = f"symbolic link leading outside {path}; not followed (pass `follow_symlinks=True`)"
            errors += [
                Prediction(str(link), error=reason)
                for link, target in links.skipped.items()
                if link.suffix.lower() in IMAGE_SUFFIXES or os.path.isdir(target)
            ]
        elif path.is_file():
            files.append(path)
        else:
            errors.append(Prediction(str(path), error="no such file or folder"))
    return files, errors


def predict_pixels(
    bundle: Bundle,
    images: np.ndarray,
    *,
    top_k: int = 1,
    batch_size: int = 32,
    progress: Progress = NO_PROGRESS,
) -> list[list[tuple[str, float]]]:
    """The `top_k` (label, probability) pairs, most likely first, for each decoded photo."""
    if not len(images):
        return []
    logits = logits_for(
        bundle.model,
        images,
        bundle.normalize,
        compute=bundle.compute,
        batch_size=batch_size,
        progress=progress,
    )
    k = max(1, min(top_k, len(bundle.classes)))
    return [
        [(bundle.classes[j], float(row[j])) for j in row.argsort()[::-1][:k]] for row in probabilities(logits)
    ]


def predict_paths(
    bundle: Bundle,
    paths: Sequence[Path],
    *,
    top_k: int = 1,
    batch_size: int = 32,
    follow_symlinks: bool = False,
    progress: Progress = NO_PROGRESS,
) -> list[Prediction]:
    """Predict every photo under `paths`, in input order, unreadable ones included as errors
    (see `expand_inputs` for symlinks)."""
    files, results = expand_inputs(paths, follow_symlinks=follow_symlinks)
    decoded = decode_all(files, bundle.image_size, progress=progress, use_cache=False)
    tops = predict_pixels(bundle, decoded.images, top_k=top_k, batch_size=batch_size, progress=progress)
    for i, top in zip(decoded.ok, tops, strict=True):
        results.append(Prediction(str(files[i]), top[0][0], top[0][1], top))
    results += [Prediction(s["path"], error=s["reason"]) for s in decoded.skipped]
    position = {str(p): n for n, p in enumerate(files)}
    return sorted(results, key=lambda r: position.get(r.path, -1))
