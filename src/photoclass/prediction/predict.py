"""Prediction on new photos: files and folders in, label and probabilities out, and whether the
photo looks like none of the classes (`unknown`). A photo that cannot be read gets its own error
row; the others are still predicted."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from photoclass.bundle import Bundle
from photoclass.data.cache import decode_all
from photoclass.data.folder import Links, walk_files
from photoclass.models.classifier import PreLogitsAndLogits
from photoclass.prediction.inference import logits_for, probabilities
from photoclass.progress import NO_PROGRESS, Progress

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Prediction:
    """One photo's result: the top label and the `top_k` (label, probability) pairs, or an error.

    `unknown` is True when the photo looks like none of the training photos (None when the
    model cannot tell: bundles made before the flag existed); with `reject_unknown` such a
    photo gets no `label` and no `probability`, only its `top` guesses."""

    path: str
    label: str | None = None
    probability: float | None = None
    top: list[tuple[str, float]] = field(default_factory=list)
    unknown: bool | None = None
    error: str | None = None


@dataclass
class Scored:
    """What the model says about one decoded photo: its calibrated `top` classes and the
    unknown flag (None when the bundle has no novelty data)."""

    top: list[tuple[str, float]]
    unknown: bool | None


@dataclass
class Outputs:
    """A batch's raw outputs: logits (N, K), and the unknown flags when the bundle has them."""

    logits: torch.Tensor
    unknown: np.ndarray | None


def model_outputs(
    bundle: Bundle,
    images: np.ndarray,
    *,
    batch_size: int = 32,
    progress: Progress = NO_PROGRESS,
    description: str = "predicting",
    threads: int | None = None,
) -> Outputs:
    """Logits and unknown flags of decoded photos, in one forward pass by the bundle's engine
    (`bundle.engine`, on `threads` threads when it is onnxruntime; the flag reads the
    pre-logits the classifier reads)."""
    net = bundle.model if bundle.novelty is None else PreLogitsAndLogits(bundle.model)
    out = logits_for(
        net,
        images,
        bundle.normalize,
        compute=bundle.compute,
        engine=bundle.engine,
        batch_size=batch_size,
        progress=progress,
        description=description,
        threads=threads,
    )
    if bundle.novelty is None:
        return Outputs(out, None)
    features, logits = net.split(out)
    return Outputs(logits, bundle.novelty.unknown(features))


def predict_pixels(
    bundle: Bundle,
    images: np.ndarray,
    *,
    top_k: int = 1,
    batch_size: int = 32,
    progress: Progress = NO_PROGRESS,
    threads: int | None = None,
) -> list[Scored]:
    """For each decoded photo, the `top_k` (label, calibrated probability) pairs, most likely
    first, and whether it looks like none of the classes (`threads`: see `model_outputs`)."""
    if not len(images):
        return []
    outputs = model_outputs(bundle, images, batch_size=batch_size, progress=progress, threads=threads)
    k = max(1, min(top_k, len(bundle.classes)))
    probs = probabilities(outputs.logits, bundle.temperature)
    flags = [None] * len(probs) if outputs.unknown is None else [bool(u) for u in outputs.unknown]
    return [
        Scored([(bundle.classes[j], float(row[j])) for j in row.argsort()[::-1][:k]], flag)
        for row, flag in zip(probs, flags, strict=True)
    ]


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


def predict_paths(
    bundle: Bundle,
    paths: Sequence[Path],
    *,
    top_k: int = 1,
    reject_unknown: bool = False,
    batch_size: int = 32,
    follow_symlinks: bool = False,
    progress: Progress = NO_PROGRESS,
) -> list[Prediction]:
    """Predict every photo under `paths`, in input order, unreadable ones included as errors
    (see `expand_inputs` for symlinks). With `reject_unknown`, photos that look like none of
    the classes get no label."""
    files, results = expand_inputs(paths, follow_symlinks=follow_symlinks)
    decoded = decode_all(files, bundle.image_size, progress=progress, use_cache=False)
    scored = predict_pixels(bundle, decoded.images, top_k=top_k, batch_size=batch_size, progress=progress)
    for i, s in zip(decoded.ok, scored, strict=True):
        rejected = reject_unknown and bool(s.unknown)
        label, probability = (None, None) if rejected else s.top[0]
        results.append(Prediction(str(files[i]), label, probability, s.top, s.unknown))
    results += [Prediction(s["path"], error=s["reason"]) for s in decoded.skipped]
    position = {str(p): n for n, p in enumerate(files)}
    return sorted(results, key=lambda r: position.get(r.path, -1))
