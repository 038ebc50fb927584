"""The phases of a training run, described by data, and the one step they all take.

A pretrained model first trains a new classifier on features its frozen backbone computes
once (the probe: an epoch costs milliseconds), then fine-tunes its last blocks on augmented
photos; a model trained from scratch has only the second phase. Each phase says what trains,
what a batch is, how a batch becomes logits and how it is validated; `loop.train` runs any
phase the same way, with `train_step`.

Under distributed training (`photoclass.training.distributed`) each process computes the
probe's features, takes training batches and validates on its share of the photos, and the
shares are put together so that every process sees the same validation logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from photoclass.config import TrainConfig
from photoclass.data.augment import CachedImages, create_augmentation, loader
from photoclass.data.decode import LazyPixels
from photoclass.data.preprocess import Normalize
from photoclass.models import ImageClassifier
from photoclass.prediction.engine import TorchRunner, runner_for
from photoclass.prediction.inference import outputs
from photoclass.prediction.novelty import pre_logits
from photoclass.progress import NO_PROGRESS, Progress
from photoclass.runtime import Compute
from photoclass.training.distributed import SINGLE, Dist
from photoclass.training.optim import create_optimizer, lr_at

Batch = tuple[torch.Tensor, torch.Tensor]  # inputs, labels (on the CPU)
RANK_SEED = 1_000_000_007  # seeds of different processes' augmentation never meet


@dataclass
class Split:
    """Decoded photos of one split: pixels (from the decode cache, or decoded as they are read),
    labels and the files they came from."""

    images: np.ndarray | LazyPixels
    labels: np.ndarray
    paths: list[str]


@dataclass
class Phase:
    """One phase of training."""

    name: str  # "probe" | "train": recorded in the history and the checkpoint
    epochs: int
    patience: int | None  # early stopping after this many epochs without progress; None: never
    size: int  # training examples per epoch (in this process)
    optimizer: torch.optim.Optimizer
    compute: Compute  # where and in what arithmetic the phase's steps run
    batches: Callable[[int], Iterable[Batch]]  # epoch -> its batches, the same for the same epoch
    forward: Callable[[torch.Tensor], torch.Tensor]  # a batch's inputs (on the device) -> logits
    validate: Callable[[], torch.Tensor]  # -> validation logits (CPU, float32)
    lr: Callable[[int], float]  # the phase's optimizer step -> learning rate
    begin_epoch: Callable[[], None]  # put each module in training or evaluation mode
    label_smoothing: float = 0.0
    # The pre-logits of the training and validation photos, when the phase computed them
    # (the probe): the prior, the unknown flag and calibration reuse them.
    features: tuple[torch.Tensor, torch.Tensor] | None = None


def train_step(
    phase: Phase,
    batch: Batch,
    scaler: torch.amp.GradScaler,
    *,
    lr: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on `batch`: the forward pass in the phase's arithmetic, the loss in
    float32, backward (scaled for fp16), step. Returns the loss and the logits, detached, on
    the device (reading them is a sync point on a GPU: the caller does it sparingly)."""
    x, y = (phase.compute.to_device(t) for t in batch)
    for group in phase.optimizer.param_groups:
        group["lr"] = lr
    with phase.compute.autocast():
        logits = phase.forward(x).float()
    loss = F.cross_entropy(logits, y, weight=weights, label_smoothing=phase.label_smoothing)
    phase.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(phase.optimizer)
    scaler.update()
    return loss.detach(), logits.detach()


def pre_logits_of(
    model: ImageClassifier,
    splits: tuple[Split, Split],
    normalize: Normalize,
    compute: Compute,
    progress: Progress = NO_PROGRESS,
    dist: Dist = SINGLE,
    *,
    engine: str = "torch",
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (train, val) pre-logits of every photo, computed by `engine`, each process computing
    its share and every process getting them all (the probe trains on them; the finished head
    is calibrated and the unknown flag fitted on them)."""
    model.eval()
    train, val = (
        dist.gather_rows(
            pre_logits(
                model,
                split.images[dist.rows(len(split.labels))],
                normalize,
                compute=compute,
                engine=engine,
                batch_size=batch_size,
                progress=progress,
                description=f"features ({name})",
            )
        )
        for name, split in zip(("train", "val"), splits, strict=True)
    )
    return train, val


def probe_phase(
    model: ImageClassifier,
    train: Split,
    val: Split,
    normalize: Normalize,
    cfg: TrainConfig,
    compute: Compute,
    progress: Progress = NO_PROGRESS,
    dist: Dist = SINGLE,
) -> Phase:
    """A new classifier trained on the frozen backbone's pooled features, computed once (each
    process computes its share; every process then trains the head on all of them, identically:
    an epoch costs milliseconds, and no gradients need exchanging)."""
    features = pre_logits_of(model, (train, val), normalize, compute, progress, dist, engine=cfg.engine)
    head = model.get_classifier()
    labels = torch.from_numpy(train.labels)

    def batches(epoch: int) -> Iterable[Batch]:
        order = torch.randperm(
            len(labels), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        )
        return ((features[0][idx], labels[idx]) for idx in order.split(cfg.batch_size))

    def validate() -> torch.Tensor:
        head.eval()
        with torch.no_grad():
            return head(compute.to_device(features[1])).float().cpu()

    return Phase(
        name="probe",
        epochs=cfg.probe_epochs,
        patience=None,
        size=len(labels),
        optimizer=torch.optim.AdamW(head.parameters(), lr=cfg.probe_lr, weight_decay=cfg.weight_decay),
        # The features are float32, and a linear layer on them costs nothing: no autocast.
        compute=Compute(compute.device, "fp32"),
        batches=batches,
        forward=head,
        validate=validate,
        lr=lambda step: cfg.probe_lr,
        begin_epoch=head.train,
        label_smoothing=cfg.label_smoothing,
        features=features,
    )


def train_phase(
    model: ImageClassifier,
    train: Split,
    val: Split,
    normalize: Normalize,
    cfg: TrainConfig,
    compute: Compute,
    pretrained: bool,
    dist: Dist = SINGLE,
) -> Phase:
    """The model (from scratch), or its last `unfreeze` blocks and head (pretrained), trained
    on augmented photos: under distributed training, each process on its share of them, with
    the gradients averaged over the processes (DistributedDataParallel)."""
    trained = model.unfrozen(cfg.unfreeze) if pretrained else list(model)
    trained_ids = {id(m) for m in trained}
    model.requires_grad_(False)
    for module in trained:
        module.requires_grad_(True)
    frozen = [m for m in model if id(m) not in trained_ids]
    dataset = CachedImages(train.images, train.labels.tolist(), create_augmentation(cfg))
    sampler = dist.sampler(dataset, seed=cfg.seed)  # this process's share; None: all
    size = len(dataset) if sampler is None else len(sampler)
    total_steps = max(1, cfg.epochs * math.ceil(size / cfg.batch_size))
    net = dist.wrap(model)  # after choosing what trains: DDP averages the gradients of those

    def batches(epoch: int) -> Iterable[Batch]:
        if sampler is not None:
            sampler.set_epoch(epoch)  # every process shuffles alike, then takes its share
        # The same epoch, the same randomness; each process its own augmentation.
        seed = cfg.seed * 100_003 + epoch + RANK_SEED * dist.rank
        torch.manual_seed(seed)
        return loader(
            dataset,
            cfg.batch_size,
            shuffle=True,
            seed=seed,
            workers=cfg.workers,
            pin_memory=compute.pin_memory,
            sampler=sampler,
        )

    def begin_epoch() -> None:
        model.train()
        for module in frozen:  # frozen layers keep their ImageNet batch-norm statistics
            module.eval()
        if pretrained:  # and small fine-tuning batches would wreck the trained ones' too
            model.apply(lambda m: m.eval() if isinstance(m, nn.modules.batchnorm._BatchNorm) else None)

    forward, logits = _forward(model, net, frozen, normalize, compute, cfg)
    own_val = val.images[dist.rows(len(val.labels))]  # sliced once: its frozen output is kept

    def validate() -> torch.Tensor:
        # Each process its share, with rank 0's batch-norm statistics.
        model.eval()
        dist.sync_buffers(model)
        return dist.gather_rows(logits(own_val))

    # Frozen parameters get no gradient, so autograd records nothing before the first
    # trained layer: the frozen part costs what inference costs.
    params = [p for p in model.parameters() if p.requires_grad]
    return Phase(
        name="train",
        epochs=cfg.epochs,
        patience=cfg.patience,
        size=size,
        optimizer=create_optimizer(cfg, params),
        compute=compute,
        batches=batches,
        forward=forward,
        validate=validate,
        lr=lambda step: lr_at(step, total_steps, cfg),
        begin_epoch=begin_epoch,
        label_smoothing=cfg.label_smoothing,
    )


FROZEN_CACHE_BYTES = 1 << 30  # validation features of frozen layers kept between epochs, at most


def _forward(
    model: ImageClassifier,
    net: nn.Module,
    frozen: list[nn.Module],
    normalize: Normalize,
    compute: Compute,
    cfg: TrainConfig,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[np.ndarray], torch.Tensor]]:
    """How a training batch ((N, 3, H, W) uint8) becomes logits, and how validation photos
    ((N, H, W, 3) uint8) do, at the training batch size (as fast as larger batches on a CPU,
    and the peak memory stays that of training).

    When the frozen layers lead the model (a pretrained backbone's first blocks) and the
    engine for them is not PyTorch, they run there, without gradients, and only the layers
    after them in PyTorch: on CPUs onnxruntime computes the frozen part 1.2-2x faster, and it
    is most of a fine-tune's forward pass. Their output for the validation photos is the same
    every epoch, so it is computed once (when it fits in `FROZEN_CACHE_BYTES`). `net` is
    `model` as it trains: under torchrun, wrapped by DDP, which must see every training
    forward pass to average the gradients, so there the whole model runs in PyTorch."""
    layers = list(model)  # the contract keeps the layers in one nn.Sequential, run in order
    count = len(frozen)
    if net is model and count and all(a is b for a, b in zip(layers[:count], frozen, strict=True)):
        leading = nn.Sequential(*layers[:count])
        first = runner_for(leading, normalize, compute, cfg.engine, size=cfg.image_size)
        if first.name != "torch":
            # Training photos smaller than validation's (`train_size_ratio`) need a graph of their own.
            first_train = (
                first
                if cfg.train_size == cfg.image_size
                else runner_for(leading, normalize, compute, cfg.engine, size=cfg.train_size)
            )
            rest = nn.Sequential(*layers[count:])
            kept: dict[int, list[torch.Tensor]] = {}

            def then(features: torch.Tensor) -> torch.Tensor:
                return rest(compute.to_device(features).contiguous(memory_format=torch.channels_last))

            @torch.inference_mode()
            def logits(images: np.ndarray) -> torch.Tensor:
                features = kept.get(id(images))
                if features is None:
                    features = [
                        first(images[i : i + cfg.batch_size]) for i in range(0, len(images), cfg.batch_size)
                    ]
                    if sum(f.numel() * f.element_size() for f in features) <= FROZEN_CACHE_BYTES:
                        kept.clear()
                        kept[id(images)] = features
                with compute.autocast():
                    return torch.cat([then(f).float().cpu() for f in features])

            return (lambda x: then(first_train(x.permute(0, 2, 3, 1)))), logits
    whole = TorchRunner(model, normalize, compute)
    return (lambda x: net(normalize(x))), lambda images: outputs(whole, images, batch_size=cfg.batch_size)
