"""Tensors from the decoded cache: `create_transform` (one knob per step, as timm's
transforms factory) and the `Dataset` the training loop iterates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from photoclass.config import Recipe


def eval_transform(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """uint8 CHW tensors (already at the model's size, from the cache) -> normalised floats."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def create_transform(
    recipe: Recipe, mean: Sequence[float], std: Sequence[float], *, training: bool
) -> v2.Compose:
    """The evaluation transform, preceded when training by each augmentation whose knob is set."""
    steps: list[v2.Transform] = []
    if training:
        if recipe.crop_scale < 1:
            steps.append(
                v2.RandomResizedCrop(recipe.image_size, scale=(recipe.crop_scale, 1.0), antialias=True)
            )
        if recipe.zoom or recipe.shear or recipe.rotate:
            zoom = (1 - recipe.zoom, 1 + recipe.zoom) if recipe.zoom else None
            steps.append(v2.RandomAffine(degrees=recipe.rotate, scale=zoom, shear=recipe.shear))
        if recipe.hflip:
            steps.append(v2.RandomHorizontalFlip(recipe.hflip))
        if recipe.color_jitter:
            cj = recipe.color_jitter
            steps.append(v2.ColorJitter(brightness=cj, contrast=cj, saturation=cj))
    return v2.Compose([*steps, *eval_transform(mean, std).transforms])


class CachedImages(torch.utils.data.Dataset):
    """(image, label) pairs read from a (N, H, W, 3) uint8 array, transformed on the fly."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], transform: v2.Compose) -> None:
        self.images, self.labels, self.transform = images, list(labels), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1)
        return self.transform(pixels), self.labels[i]


def loader(
    dataset: CachedImages, batch_size: int, *, shuffle: bool, seed: int = 0, workers: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader whose order and augmentation depend only on `seed`, so an epoch replayed
    after a resume sees exactly the batches it saw the first time."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=workers,
    )
