"""Export a model bundle to ONNX, for runtimes other than PyTorch, checked against PyTorch.

    photoclass export models/cats-owls --out cats-owls.onnx --check data/cats-owls/val

The ONNX graph takes what `photoclass.data.decode.decode_image` gives: uint8 pixels of shape
(batch, image_size, image_size, 3), RGB, squashed to the model's size. It normalises them
itself and outputs class probabilities (batch, classes), so a consumer needs only an image
library. Class names, the input size and how to resize are in the file's metadata
(`photoclass.classes` as JSON, `photoclass.image_size`, `photoclass.resize`). The graph is
float32 whatever the model trained in.

Needs the `export` extra (onnx, onnxscript, onnxruntime): `pip install 'photoclass[export]'`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from photoclass.bundle import Bundle
from photoclass.data.cache import decode_all
from photoclass.errors import DatasetError, DependencyError, ExportError
from photoclass.files import atomic_write
from photoclass.prediction.engine import TOLERANCE, Pixels, export_graph
from photoclass.prediction.predict import expand_inputs
from photoclass.progress import NO_PROGRESS, Progress


class Probabilities(nn.Module):
    """`model`'s logits turned into calibrated class probabilities (`Bundle.temperature`)."""

    def __init__(self, model: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x) / self.temperature, dim=1)


@dataclass(frozen=True)
class ExportResult:
    """Where the file went, and how closely it agrees with PyTorch on the checked photos."""

    path: Path
    size_bytes: int
    checked: int  # photos run through both
    max_difference: float  # largest |p_onnx - p_torch| over every photo and class
    same_labels: int  # photos whose most probable class is the same in both


def export_onnx(
    bundle: Bundle, out: Path, check: Sequence[Path] = (), *, progress: Progress = NO_PROGRESS
) -> ExportResult:
    """Write `bundle` as ONNX to `out`, then run it with onnxruntime on the photos in `check`
    (or on random pixels when none is given) and compare with PyTorch; a difference over
    `TOLERANCE` is an error and leaves no file behind."""
    onnx, ort = _export_modules()
    wrapper = Pixels(Probabilities(bundle.model, bundle.temperature), bundle.normalize).eval()
    size = bundle.image_size
    proto = onnx.load_from_string(export_graph(wrapper, size, output="probabilities"))
    meta = {
        "photoclass.classes": json.dumps(bundle.classes),
        "photoclass.image_size": str(size),
        "photoclass.resize": bundle.meta.get("resize", "squash"),
        "photoclass.architecture": bundle.meta["architecture"],
    }
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    pixels = _check_pixels(check, size, progress)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": pixels})[0]
    with torch.inference_mode():
        want = wrapper(torch.from_numpy(pixels)).numpy()
    difference = float(np.abs(got - want).max())
    if difference > TOLERANCE:
        raise ExportError(
            f"the ONNX graph differs from PyTorch by {difference:.2g} (over {TOLERANCE:g}); "
            "not written. Update torch/onnxruntime, or report it"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: onnx.save(proto, os.fspath(tmp)))
    same = int((got.argmax(1) == want.argmax(1)).sum())
    return ExportResult(out, out.stat().st_size, len(pixels), difference, same)


def _export_modules():
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's torch.export-based ONNX exporter needs it)
    except ImportError as e:
        raise DependencyError(
            f"ONNX export needs {e.name}; install it with: pip install 'photoclass[export]'", extra="export"
        ) from None
    return onnx, onnxruntime


def _check_pixels(check: Sequence[Path], size: int, progress: Progress) -> np.ndarray:
    if not check:
        return np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    files, _ = expand_inputs(check)
    decoded = decode_all(files, size, progress=progress, use_cache=False)
    if not len(decoded.ok):
        raise DatasetError(f"no readable photo in {', '.join(map(str, check))} to check the export on")
    return np.ascontiguousarray(decoded.images)
