"""Running a model over decoded pixels, in batches, without gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from photoclass.progress import progress_bar


@torch.inference_mode()
def logits_for(
    model: nn.Module,
    images: np.ndarray,
    transform: v2.Compose,
    *,
    batch_size: int = 32,  # faster than 64 on 2 cores: the batch stays in cache
    progress: bool = False,
    description: str = "predicting",
) -> torch.Tensor:
    """Logits for (N, H, W, 3) uint8 `images` (model in eval mode, channels-last)."""
    out = []
    with progress_bar(description, len(images), enabled=progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(np.array(images[start : start + batch_size]))
            x = transform(chunk.permute(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
            out.append(model(x).float())
            bar.advance(len(chunk))
    return torch.cat(out) if out else torch.empty(0)


def probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits, dim=1).numpy()
