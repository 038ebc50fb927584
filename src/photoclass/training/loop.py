"""Training, top to bottom: scan the folder, decode every photo once, build the model, train
(a linear probe on frozen features first, for pretrained models), validate every epoch, stop
early on validation loss, keep the best weights, checkpoint every epoch, write the bundle.

    photoclass train data/cats-owls --out models/cats-owls
    photoclass train data/cats-owls --out models/ref --model seed-cnn      # the tutorial
    photoclass train data/cats-owls --out models/cats-owls --resume        # after a crash
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from photoclass.bundle import META, WEIGHTS, save_bundle, state_tensors
from photoclass.config import TrainConfig
from photoclass.data.augment import CachedImages, create_augmentation, loader
from photoclass.data.cache import decode_all
from photoclass.data.folder import Sample, scan_dataset, stratified_split
from photoclass.data.preprocess import Normalize
from photoclass.errors import ConfigError, DatasetError, OutputExistsError
from photoclass.evaluation.metrics import compute_metrics, headline
from photoclass.models import create_model, get_model_entry
from photoclass.prediction.inference import logits_for, mixed_precision, probabilities
from photoclass.progress import NO_PROGRESS, Progress
from photoclass.training.checkpoint import NAME as CHECKPOINT
from photoclass.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from photoclass.training.optim import create_optimizer, lr_at

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What `train` returns: where the bundle is, its metadata, and validation metrics."""

    out: Path
    meta: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta["validation"]


@dataclass
class Split:
    """Decoded photos of one split: pixels, labels and the files they came from."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]


def train(
    data: Path,
    out: Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress = NO_PROGRESS,
) -> TrainResult:
    """Train a classifier on `data/train/<class>/` and write the bundle to `out`.

    Validation uses `data/val/` when present, else a stratified, seeded split of `train/`.
    Example: `photoclass.train("data/cats-owls", "models/co", TrainConfig(model="small-cnn"))`.
    """
    started = time.perf_counter()
    config = config or TrainConfig()
    entry = get_model_entry(config.model)
    cfg = config.resolve(entry.recipe)
    out = Path(out)
    _check_out(out, resume, overwrite)

    # -- data: scan, split, decode each photo exactly once ---------------------------------
    dataset = scan_dataset(Path(data))
    classes = dataset.classes
    train_samples, val_samples, val_source = _train_val(dataset.train, dataset.val, cfg)
    decoded = decode_all([s.path for s in train_samples + val_samples], cfg.image_size, progress=progress)
    train_split, val_split = _split_decoded(decoded, train_samples, val_samples)
    _check_usable(train_split, val_split, classes, dataset.root)
    if decoded.skipped:
        first = decoded.skipped[0]
        log.warning(
            "skipped %d unreadable file(s), e.g. %s (%s); all listed in %s",
            len(decoded.skipped),
            first["path"],
            first["reason"],
            out / META,
        )

    # -- model and state (fresh, or from the last checkpoint) ------------------------------
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, len(classes), cfg.image_size).to(memory_format=torch.channels_last)
    run_id = {"config": cfg.to_dict(), "data": _fingerprint(train_split, val_split, classes)}
    state, best, optimizer_state = TrainState(), state_tensors(model), None
    best_logits: torch.Tensor | None = None  # validation logits of `best`
    if resume and (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out / CHECKPOINT)
        if ckpt.run != run_id:
            raise ConfigError(
                f"the checkpoint in {out} was made with other options or data; rerun with the "
                "same options, or start over with `overwrite=True` and without `resume`"
            )
        state, best, optimizer_state, best_logits = ckpt.state, ckpt.best, ckpt.optimizer, ckpt.best_logits
        model.load_state_dict(ckpt.model)
        log.info("resuming %s after %d finished epoch(s)", out, len(state.history))
    if not cfg.probe_epochs and state.phase == "probe":
        state.phase = "train"
    weights = _class_weights(train_split.labels, len(classes)) if cfg.balance else None
    normalize = Normalize(entry.cfg.mean, entry.cfg.std)
    out.mkdir(parents=True, exist_ok=True)

    def checkpoint(optimizer: torch.optim.Optimizer | None) -> None:
        save_checkpoint(out / CHECKPOINT, state, state_tensors(model), best, optimizer, run_id, best_logits)

    def record(row: dict[str, Any], current: dict[str, torch.Tensor], logits: torch.Tensor) -> bool:
        """Append an epoch's metrics; track the best weights; True when it is time to stop."""
        nonlocal best, best_logits
        state.history.append(row)
        if row["val_loss"] < state.best_loss - 1e-4:
            state.best_loss, state.best_epoch, state.bad_epochs = (
                row["val_loss"],
                len(state.history) - 1,
                0,
            )
            best, best_logits = {k: v.clone() for k, v in current.items()}, logits
        else:
            state.bad_epochs += 1
        return state.bad_epochs >= cfg.patience

    # -- phase 1 (pretrained models): a new head on features computed once -----------------
    # The frozen backbone gives the same features every epoch, so they are computed once and
    # the head trains on them in a fraction of a second per epoch.
    if state.phase == "probe":
        body, head = model[:-1], model[-1]
        feats = [
            logits_for(
                body.eval(),
                s.images,
                normalize,
                precision=cfg.precision,
                progress=progress,
                description=f"features ({name})",
            )
            for name, s in (("train", train_split), ("val", val_split))
        ]
        head_opt = torch.optim.AdamW(head.parameters(), lr=cfg.probe_lr, weight_decay=cfg.weight_decay)
        for epoch in range(cfg.probe_epochs):  # no early stop: an epoch costs milliseconds
            row, logits = _probe_epoch(head, head_opt, feats, train_split, val_split, cfg, epoch, weights)
            record({"phase": "probe", "epoch": epoch + 1, **row}, state_tensors(model), logits)
        state.phase, state.epoch, state.bad_epochs = "train", 0, 0
        model.load_state_dict(best)
        log.info(_epoch_line(state.history[state.best_epoch or 0], "probe (best)"))
        checkpoint(None)

    # -- phase 2: train (from scratch) or fine-tune the last blocks, with augmentation -----
    start = model.finetune_start(cfg.unfreeze) if entry.cfg.pretrained else 0
    frozen, trainable = model[:start], model[start:]
    frozen.requires_grad_(False)
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = create_optimizer(cfg, params)
    if optimizer_state is not None and state.epoch > 0:
        optimizer.load_state_dict(optimizer_state)
    train_set = CachedImages(train_split.images, train_split.labels.tolist(), create_augmentation(cfg))
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    while state.epoch < cfg.epochs and not state.stopped_early:
        epoch_seed = cfg.seed * 100_003 + state.epoch  # the same epoch, the same randomness
        torch.manual_seed(epoch_seed)
        batches = loader(train_set, cfg.batch_size, shuffle=True, seed=epoch_seed, workers=cfg.workers)
        frozen.eval()  # frozen layers keep their ImageNet batch-norm statistics
        trainable.train()
        if entry.cfg.pretrained:  # small fine-tuning batches would wreck them
            trainable.apply(lambda m: m.eval() if isinstance(m, nn.modules.batchnorm._BatchNorm) else None)
        tick, seen, loss_sum, hits = time.perf_counter(), 0, 0.0, 0
        title = f"epoch {state.epoch + 1}/{cfg.epochs}"
        with progress.task(title, len(train_set)) as bar:
            for x, y in batches:
                lr = lr_at(state.step, total_steps, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with mixed_precision(cfg.precision):
                    with torch.no_grad():
                        x = frozen(normalize(x))
                    logits = trainable(x).float()
                loss = F.cross_entropy(logits, y, weight=weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                state.step += 1
                seen += len(y)
                loss_sum += loss.item() * len(y)
                hits += int((logits.argmax(1) == y).sum())
                speed = seen / (time.perf_counter() - tick)
                info = f"loss {loss_sum / seen:.3f} acc {hits / seen:.1%} {speed:.0f} img/s"
                bar.advance(len(y), info=info)
        val, logits = _validate(model, val_split, normalize, weights, cfg)
        row = {
            "phase": "train",
            "epoch": state.epoch + 1,
            "train_loss": loss_sum / seen,
            "train_acc": hits / seen,
            **val,
            "lr": lr,
            "seconds": time.perf_counter() - tick,
        }
        state.stopped_early = record(row, state_tensors(model), logits) and state.epoch + 1 < cfg.epochs
        state.epoch += 1
        log.info(_epoch_line(row, title))
        checkpoint(optimizer)

    # -- the bundle: best weights + everything needed to use and judge them ----------------
    model.load_state_dict(best)
    model.eval()
    if best_logits is None:  # no epoch ran at all
        best_logits = logits_for(
            model, val_split.images, normalize, batch_size=cfg.batch_size, precision=cfg.precision
        )
    probs = probabilities(best_logits)
    validation = compute_metrics(val_split.labels, probs, classes)
    meta = {
        "architecture": cfg.model,
        "summary": entry.summary,
        "classes": classes,
        "image_size": cfg.image_size,
        "resize": "squash",
        "precision": cfg.precision,
        "mean": list(entry.cfg.mean),
        "std": list(entry.cfg.std),
        "config": cfg.to_dict(),
        "data": {
            "root": str(Path(data).resolve()),
            "train": len(train_split.labels),
            "val": len(val_split.labels),
            "val_source": val_source,
        },
        "history": state.history,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
        "validation": validation,
        "skipped": decoded.skipped,
        "train_seconds": time.perf_counter() - started,
    }
    save_bundle(out, model, meta)
    (out / CHECKPOINT).unlink(missing_ok=True)
    log.info("done: validation %s; model in %s", headline(validation), out)
    return TrainResult(out, meta)


# -- helpers ---------------------------------------------------------------------------------


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    finished = (out / META).exists() and not (out / CHECKPOINT).exists()
    if overwrite:
        for name in (META, WEIGHTS, CHECKPOINT):
            (out / name).unlink(missing_ok=True)
        return
    if finished:
        raise OutputExistsError(
            f"{out} already holds a trained model; choose another `out` or pass `overwrite=True`",
            path=str(out),
            unfinished=False,
        )
    if (out / CHECKPOINT).exists() and not resume:
        raise OutputExistsError(
            f"{out} holds an unfinished training run; pass `resume=True` to continue it or `overwrite=True`",
            path=str(out),
            unfinished=True,
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`out` {out} is a file; give a folder for the model")


def _train_val(
    train: list[Sample], val: list[Sample] | None, cfg: TrainConfig
) -> tuple[list[Sample], list[Sample], str]:
    if val:
        return train, val, "val/"
    keep, held = stratified_split(train, cfg.val_fraction, cfg.seed)
    return keep, held, f"{cfg.val_fraction:.0%} of train/ (stratified, seed {cfg.seed})"


def _split_decoded(decoded, train: list[Sample], val: list[Sample]) -> tuple[Split, Split]:
    samples = train + val
    n_train = len(train)
    ok = np.asarray(decoded.ok, dtype=np.int64)
    labels = np.asarray([samples[i].label for i in ok], dtype=np.int64)
    paths = [str(samples[i].path) for i in ok]
    cut = int((ok < n_train).sum())  # decoded.ok is ordered, so train rows come first
    return (
        Split(decoded.images[:cut], labels[:cut], paths[:cut]),
        Split(decoded.images[cut:], labels[cut:], paths[cut:]),
    )


def _check_usable(train: Split, val: Split, classes: list[str], root: Path) -> None:
    counts = np.bincount(train.labels, minlength=len(classes))
    for name, count in zip(classes, counts, strict=True):
        if count == 0:
            raise DatasetError(
                f"no readable training photo in {root / 'train' / name}; add photos that open as images"
            )
    if len(val.labels) == 0:
        raise DatasetError(f"no readable validation photo under {root}; add photos to {root / 'val'}")


def _fingerprint(train: Split, val: Split, classes: list[str]) -> str:
    digest = hashlib.sha256("\n".join(classes + train.paths + ["--"] + val.paths).encode())
    return digest.hexdigest()[:16]


def _class_weights(labels: np.ndarray, k: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return torch.tensor(len(labels) / (k * counts), dtype=torch.float32)


def _validate(
    model: nn.Module,
    split: Split,
    normalize: Normalize,
    weights: torch.Tensor | None,
    cfg: TrainConfig,
) -> tuple[dict[str, float], torch.Tensor]:
    """Validation loss and accuracy, and the logits they came from, in the arithmetic the
    model will predict in. At the training batch size: as fast as larger batches on CPU,
    and the peak memory stays that of training."""
    model.eval()
    logits = logits_for(model, split.images, normalize, batch_size=cfg.batch_size, precision=cfg.precision)
    return _scores(logits, torch.from_numpy(split.labels), weights), logits


def _scores(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> dict[str, float]:
    return {
        "val_loss": float(F.cross_entropy(logits, labels, weight=weights)),
        "val_acc": float((logits.argmax(1) == labels).float().mean()),
    }


def _probe_epoch(
    head, optimizer, feats, train: Split, val: Split, cfg, epoch: int, weights
) -> tuple[dict[str, float], torch.Tensor]:
    """One pass of the head over the cached training features, then its validation scores
    and logits."""
    f_train, f_val = feats
    y_train, y_val = torch.from_numpy(train.labels), torch.from_numpy(val.labels)
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    head.train()
    loss_sum = hits = 0.0
    for idx in order.split(cfg.batch_size):
        logits = head(f_train[idx])
        loss = F.cross_entropy(logits, y_train[idx], weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(idx)
        hits += int((logits.argmax(1) == y_train[idx]).sum())
    head.eval()
    with torch.no_grad():
        val_logits = head(f_val)
    row = {
        "train_loss": loss_sum / len(y_train),
        "train_acc": hits / len(y_train),
        **_scores(val_logits, y_val, weights),
        "lr": cfg.probe_lr,
        "seconds": 0.0,
    }
    return row, val_logits


def _epoch_line(row: dict[str, Any], title: str) -> str:
    return (
        f"{title}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%} | "
        f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.1%}"
    )
