"""Grad-CAM: where in a photo the model found its evidence for a class.

The activations of the last layer that still has a spatial layout (N, C, H, W), weighted per
channel by the average gradient of the class score, summed and clipped at zero, then
upsampled to the input (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391).

photoclass models are `nn.Sequential`s, so the network is cut in two at that layer and the
gradient is taken with respect to the cut: no hooks, and no gradients through the backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from torch import nn

from photoclass.data.preprocess import Normalize


@torch.no_grad()
def cam_layer(model: nn.Sequential, image_size: int) -> int:
    """Index of the last layer of `model` whose output is a feature map with more than one
    pixel (a global pool's 1x1 output has nothing left to localise)."""
    x = torch.zeros(1, 3, image_size, image_size).contiguous(memory_format=torch.channels_last)
    found = None
    for i, layer in enumerate(model):
        x = layer(x)
        if x.ndim == 4 and x.shape[-2] * x.shape[-1] > 1:
            found = i
    if found is None:
        raise ValueError(f"no layer of this model keeps a spatial layout at {image_size} px")
    return found


def grad_cam(
    model: nn.Sequential,
    images: np.ndarray,
    normalize: Normalize,
    targets: Sequence[int] | None = None,
) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1] for (N, H, W, 3) uint8 `images`: where the evidence for
    class `targets[i]` (default: the predicted class) is strongest (1) and weakest (0)."""
    layer = cam_layer(model, images.shape[1])
    body, head = model[: layer + 1], model[layer + 1 :]
    with torch.no_grad():
        features = body(normalize.batch(images))
    features.requires_grad_(True)
    with torch.enable_grad():
        logits = head(features)
        chosen = logits.argmax(1) if targets is None else torch.as_tensor(list(targets))
        # Each photo's score depends only on its own features (eval mode), so one backward
        # pass over the summed scores gives every photo its own gradient.
        score = logits.gather(1, chosen[:, None]).sum()
        (grads,) = torch.autograd.grad(score, features)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0]
    # Each map spans [0, 1], so a weak model's faint preference still shows; a flat map
    # (no evidence, or the same everywhere) stays 0.
    low, high = cam.amin(dim=(1, 2), keepdim=True), cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(high > low, (cam - low) / (high - low).clamp_min(1e-12), 0.0).numpy()


def overlay(photo: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """`heat` (any size, [0, 1]) coloured and blended over `photo` (H, W, 3) uint8."""
    heat_t = torch.from_numpy(np.asarray(heat, dtype=np.float32))[None, None]
    heat = F.interpolate(heat_t, size=photo.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    colours = colormaps["turbo"](heat.clamp(0, 1).numpy())[..., :3] * 255
    return (photo * (1 - alpha) + colours * alpha).round().astype(np.uint8)
