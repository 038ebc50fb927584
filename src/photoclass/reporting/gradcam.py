"""Grad-CAM: where in a photo the model found its evidence for its decision.

The model's last feature map (`forward_features`, (N, C, H, W)), weighted per channel by the
average gradient of the decision's score, summed and clipped at zero, then upsampled to the
input (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391).

The score explained is the decision against the other classes: the class's logit minus the
log-sum-exp of the others' (its log-odds). A class's logit alone can carry no gradient at all:
a two-class head emits `[0, z]`, so the first class's logit is 0 for every photo and its maps
would be empty; the margin is `-z` there, and for any head it is what makes the class win.

The gradient is taken with respect to the feature map itself (`forward_head` from there): no
hooks, and no gradients through the backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps

from photoclass.data.preprocess import Normalize
from photoclass.models.classifier import ImageClassifier


def decision_margin(logits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Per row: the chosen class's logit minus the log-sum-exp of the other classes' logits."""
    mine = logits.gather(1, chosen[:, None])[:, 0]
    others = logits.masked_fill(F.one_hot(chosen, logits.shape[1]).bool(), float("-inf"))
    return mine - others.logsumexp(1)


def grad_cam(
    model: ImageClassifier,
    images: np.ndarray,
    normalize: Normalize,
    targets: Sequence[int] | None = None,
) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1] for (N, H, W, 3) uint8 `images`: where the evidence for
    class `targets[i]` (default: the predicted class) over the others is strongest (1) and
    weakest (0)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        features = model.forward_features(normalize.batch(images).to(device))
    features.requires_grad_(True)
    with torch.enable_grad():
        logits = model.forward_head(features).float()
        chosen = logits.argmax(1) if targets is None else torch.as_tensor(list(targets), device=device)
        # Each photo's score depends only on its own features (eval mode), so one backward
        # pass over the summed scores gives every photo its own gradient.
        (grads,) = torch.autograd.grad(decision_margin(logits, chosen).sum(), features)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features.detach()).sum(dim=1, keepdim=True)).float()
    cam = F.interpolate(cam, size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0]
    # Each map spans [0, 1], so a weak model's faint preference still shows; a flat map
    # (no evidence, or the same everywhere) stays 0.
    low, high = cam.amin(dim=(1, 2), keepdim=True), cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(high > low, (cam - low) / (high - low).clamp_min(1e-12), 0.0).cpu().numpy()


def overlay(photo: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """`heat` (any size, [0, 1]) coloured and blended over `photo` (H, W, 3) uint8."""
    heat_t = torch.from_numpy(np.asarray(heat, dtype=np.float32))[None, None]
    heat = F.interpolate(heat_t, size=photo.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    colours = colormaps["turbo"](heat.clamp(0, 1).numpy())[..., :3] * 255
    return (photo * (1 - alpha) + colours * alpha).round().astype(np.uint8)
