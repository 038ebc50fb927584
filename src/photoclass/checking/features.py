"""Pretrained features: what a photo looks like to an ImageNet network, as one vector.

`check` finds mislabelled and off-topic photos in this space (linear probes and nearest
neighbours on features computed once), and so can anything else that needs to compare photos
by content. This is the one place that knows how to get them out of a registered model
(`embed`); `embed_files` keeps them in the decode cache, so a second check of the same files
(the one with `fix=True` after reading the report, a rerun of `photoclass run`) reuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from photoclass.checking.findings import DEFAULT_MODEL
from photoclass.data.cache import derived
from photoclass.data.preprocess import Normalize
from photoclass.errors import ConfigError
from photoclass.models import create_model, get_model_entry, list_models
from photoclass.prediction.novelty import pre_logits
from photoclass.progress import NO_PROGRESS, Progress


def feature_size(model: str) -> int:
    """The side, in pixels, of the photos `model` describes (its recipe's image size); a
    `ConfigError` when `model` has no pretrained weights to describe photos with."""
    entry = get_model_entry(model)
    if not entry.cfg.pretrained:
        pretrained = [name for name in list_models() if get_model_entry(name).cfg.pretrained]
        raise ConfigError(
            f"model '{model}' has no pretrained weights to describe photos with; "
            f"`model` must be one of: {', '.join(pretrained)}"
        )
    return entry.defaults().image_size


def embed(images: np.ndarray, model: str = DEFAULT_MODEL, progress: Progress = NO_PROGRESS) -> np.ndarray:
    """(N, D) float32 features of (N, size, size, 3) uint8 photos (`size` = `feature_size(model)`):
    the pretrained network's pre-logits, as `photoclass.prediction.novelty` measures them."""
    size = feature_size(model)
    entry = get_model_entry(model)
    network = create_model(model, num_classes=2, image_size=size).eval().to(memory_format=torch.channels_last)
    # fp32: efficientnet-lite0's depthwise convolutions ran 1.3x slower in bfloat16 here.
    features = pre_logits(
        network,
        images,
        Normalize(entry.cfg.mean, entry.cfg.std),
        progress=progress,
        description=f"features ({model})",
    )
    return features.numpy()


def embed_files(
    paths: Sequence[Path], images: np.ndarray, model: str = DEFAULT_MODEL, progress: Progress = NO_PROGRESS
) -> np.ndarray:
    """`embed(images)`, where `images` are the decoded `paths`, computed once per set of files."""
    size = feature_size(model)
    return derived(paths, size, f"features-{model}", lambda: embed(images, model, progress))
