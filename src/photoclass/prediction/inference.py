"""Running a model over decoded pixels, in batches, without gradients, in the chosen engine
(`photoclass.prediction.engine`) and on the run's device."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from photoclass.data.preprocess import Normalize
from photoclass.prediction.engine import Runner, runner_for
from photoclass.progress import NO_PROGRESS, Progress
from photoclass.runtime import Compute

CPU_FP32 = Compute(torch.device("cpu"), "fp32")
BATCH_SIZE = 32  # faster than 64 on 2 cores: the batch stays in cache


def logits_for(
    model: nn.Module,
    images: np.ndarray,
    normalize: Normalize,
    *,
    compute: Compute = CPU_FP32,
    engine: str = "torch",
    batch_size: int = BATCH_SIZE,
    progress: Progress = NO_PROGRESS,
    description: str = "predicting",
    threads: int | None = None,
) -> torch.Tensor:
    """Float32 logits (or whatever `model` outputs), on the CPU, for (N, H, W, 3) uint8
    `images`; the model is in eval mode, channels-last, on `compute.device`, and computes in
    `compute.precision` under `engine` ("torch" | "onnx" | "auto"; `threads`: see `runner_for`)."""
    if not len(images):
        return torch.empty(0)
    run = runner_for(model, normalize, compute, engine, size=images.shape[1], threads=threads)
    return outputs(run, images, batch_size=batch_size, progress=progress, description=description)


def outputs(
    run: Runner,
    images: np.ndarray,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress = NO_PROGRESS,
    description: str = "predicting",
) -> torch.Tensor:
    """`run` over `images` batch by batch, the outputs concatenated."""
    out = []
    with progress.task(description, len(images)) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            out.append(run(chunk))
            bar.advance(len(chunk))
    return torch.cat(out) if out else torch.empty(0)


def probabilities(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """Softmax of `logits / temperature` (the bundle's calibration, `Bundle.temperature`)."""
    return torch.softmax(logits / temperature, dim=1).numpy()
