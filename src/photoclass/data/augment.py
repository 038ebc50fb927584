"""Training batches from the decoded cache: `create_augmentation` (one knob per step, as
timm's transforms factory) and the `Dataset` the training loop iterates. Augmentation works on
uint8 pixels in DataLoader workers; `photoclass.data.preprocess.Normalize` then turns each
batch into model input in the main process."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from photoclass.config import TrainConfig
from photoclass.data.decode import LazyPixels


def create_augmentation(cfg: TrainConfig) -> v2.Compose:
    """Each augmentation whose knob is set in the resolved `cfg`, in order, on a PIL image already at the
    model's size (from the cache), ending in a uint8 CHW tensor of the training side
    (`cfg.train_size`). PIL images, not tensors, because PIL's affine and resize kernels are
    1.5-3.7x faster than torchvision's tensor ones at these sizes, and the workers share the
    CPU with training."""
    steps: list[v2.Transform] = []
    if cfg.crop_scale < 1:
        steps.append(v2.RandomResizedCrop(cfg.train_size, scale=(cfg.crop_scale, 1.0), antialias=True))
    elif cfg.train_size != cfg.image_size:
        steps.append(v2.Resize((cfg.train_size, cfg.train_size), antialias=True))
    if cfg.zoom or cfg.shear or cfg.rotate:
        zoom = (1 - cfg.zoom, 1 + cfg.zoom) if cfg.zoom else None
        steps.append(v2.RandomAffine(degrees=cfg.rotate, scale=zoom, shear=cfg.shear))
    if cfg.hflip:
        steps.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.color_jitter:
        cj = cfg.color_jitter
        steps.append(v2.ColorJitter(brightness=cj, contrast=cj, saturation=cj))
    if cfg.grayscale:
        steps.append(v2.RandomGrayscale(cfg.grayscale))
    return v2.Compose([*steps, v2.PILToTensor()])


class CachedImages(torch.utils.data.Dataset):
    """(uint8 image, label) pairs read from a (N, H, W, 3) uint8 array (the decode cache, or
    `LazyPixels`, which decodes each photo as it is read), augmented on the fly."""

    def __init__(self, images: np.ndarray | LazyPixels, labels: Sequence[int], augment: v2.Compose) -> None:
        self.images, self.labels, self.augment = images, list(labels), augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.augment(Image.fromarray(np.asarray(self.images[i]))), self.labels[i]


def loader(
    dataset: CachedImages,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    workers: int = 0,
    pin_memory: bool = False,
    sampler: torch.utils.data.Sampler | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader whose order and augmentation depend only on `seed`, so an epoch replayed
    after a resume sees exactly the batches it saw the first time. `pin_memory` for a GPU:
    page-locked batches copy to it while it computes. `sampler`: which photos, in which order
    (one process's share, under distributed training), instead of `shuffle`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=workers,
        pin_memory=pin_memory,
    )
