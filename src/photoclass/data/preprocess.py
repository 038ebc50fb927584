"""uint8 pixels -> model input: the one preprocessing step shared by training, validation,
evaluation, prediction and Grad-CAM.

It runs on whole batches in the main process (augmentation workers hand over uint8, a quarter
of the bytes of float32), and it is plain torch, so loading a model to predict a photo does not
import torchvision."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class Normalize:
    """(N, 3, H, W) uint8 -> float32 `(x / 255 - mean) / std`, channels-last (the layout
    oneDNN's CPU convolutions are fastest in)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(map(float, mean)), tuple(map(float, std))
        std_t = torch.tensor(self.std).view(1, 3, 1, 1)
        # x * scale + shift, one fused op: (1, 3, 1, 1) tensors that broadcast over a batch.
        self.scale = 1 / (255 * std_t)
        self.shift = -torch.tensor(self.mean).view(1, 3, 1, 1) / std_t

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Reordering the uint8 batch costs a quarter of reordering the float one.
        x = x.contiguous(memory_format=torch.channels_last)
        shift, scale = self.shift.to(x.device), self.scale.to(x.device)  # no copy on the CPU
        return torch.addcmul(shift, x.float(), scale).contiguous(memory_format=torch.channels_last)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"

    def batch(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 pixels (the decoded cache's layout) -> model input."""
        return self(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2))
