"""Training, top to bottom: join the other processes (when torchrun started several), choose
the device and arithmetic, scan the folder, decode every photo once (or stream a data set too
large for the decode cache), build the model, run its phases (a probe on frozen features for
pretrained models, then training with augmentation), validate every epoch, stop early on
validation loss, keep the best weights, checkpoint every epoch, write the bundle.

    photoclass train data/cats-owls --out models/cats-owls
    photoclass train data/cats-owls --out models/ref --model seed-cnn      # the tutorial
    photoclass train data/cats-owls --out models/cats-owls --resume        # after a crash
    torchrun --nproc-per-node 4 -m photoclass train data/cats-owls --out models/co   # 4 GPUs

Several processes train one model (`photoclass.training.distributed`): each takes its share
of every epoch's photos and DistributedDataParallel averages their gradients; rank 0 alone
shows progress, logs, checkpoints and writes the bundle (`dist.main`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from photoclass.bundle import META, WEIGHTS, save_bundle, state_tensors
from photoclass.config import TrainConfig
from photoclass.data.cache import (
    Decoded,
    cache_limit_gb,
    check_all,
    decode_all,
    decoded_gb,
    fits_in_cache,
)
from photoclass.data.decode import LazyPixels
from photoclass.data.folder import Sample, scan_dataset, stratified_split
from photoclass.data.preprocess import Normalize
from photoclass.errors import ConfigError, DatasetError, OutputExistsError
from photoclass.evaluation.calibration import expected_calibration_error, fit_temperature, softmax
from photoclass.evaluation.metrics import compute_metrics, headline
from photoclass.models import ImageClassifier, create_model, get_model_entry
from photoclass.prediction.novelty import Novelty, fit_novelty
from photoclass.progress import NO_PROGRESS, Progress
from photoclass.runtime import Compute
from photoclass.training.checkpoint import NAME as CHECKPOINT
from photoclass.training.checkpoint import (
    Checkpoint,
    TrainState,
    load_checkpoint,
    run_state,
    save_checkpoint,
)
from photoclass.training.distributed import Dist, same_everywhere, setup, weights_digest
from photoclass.training.phases import Phase, Split, pre_logits_of, probe_phase, train_phase, train_step
from photoclass.training.prior import blend, find_prior, record
from photoclass.training.prior import good_enough as prior_good_enough

log = logging.getLogger(__name__)
LOG_EVERY = 10  # steps between reads of the running loss (each read waits for a GPU)


@dataclass
class TrainResult:
    """What `train` returns: where the bundle is, its metadata, and validation metrics.
    `main`: this process wrote the bundle (always, but for ranks > 0 under torchrun)."""

    out: Path
    meta: dict[str, Any]
    main: bool = True

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta["validation"]


def train(
    data: Path,
    out: Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    follow_symlinks: bool = False,
    progress: Progress = NO_PROGRESS,
) -> TrainResult:
    """Train a classifier on `data/train/<class>/` and write the bundle to `out`.

    Validation uses `data/val/` when present, else a stratified, seeded split of `train/`.
    Example: `photoclass.train("data/cats-owls", "models/co", TrainConfig(model="small-cnn"))`.
    Under torchrun every process calls it and they train one model; rank 0 writes the bundle
    (`TrainResult.main`), and every process returns the same metrics.
    """
    started = time.perf_counter()

    # -- the run: every option settled, the processes joined, device and arithmetic chosen once
    entry = get_model_entry((config or TrainConfig()).model)
    cfg = entry.resolve(config or TrainConfig())
    dist = setup(cfg.device)  # one process; or one of torchrun's, on its own GPU under NCCL
    same_everywhere(dist, "the options", cfg.to_dict(), parameters=True)
    progress = progress if dist.main else NO_PROGRESS  # rank 0 shows progress (and logs)
    compute = Compute.create(dist.device, cfg.precision)
    out = Path(out)
    dist.from_main(lambda: _check_out(out, resume, overwrite))

    # -- data: scan, split, decode each photo exactly once (or as it is read) ----------------
    dataset = dist.everywhere(lambda: scan_dataset(Path(data), follow_symlinks=follow_symlinks))
    classes = dataset.classes
    train_samples, val_samples, val_source = _train_val(dataset.train, dataset.val, cfg)
    same_everywhere(dist, "the data", *_data_identity(dataset.root, train_samples, val_samples))
    train_split, val_split, skipped, pixels = _pixels(
        train_samples, val_samples, cfg.image_size, dist, progress
    )
    _check_usable(train_split, val_split, classes, dataset.root)
    if skipped:
        first = skipped[0]
        log.warning(
            "skipped %d unreadable file(s), e.g. %s (%s); all listed in %s",
            len(skipped),
            first["path"],
            first["reason"],
            out / META,
        )

    # -- model and state (fresh, or from the last checkpoint) ------------------------------
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, len(classes), cfg.image_size).to(
        compute.device, memory_format=torch.channels_last
    )
    normalize = Normalize(entry.cfg.mean, entry.cfg.std)
    run_id = {"config": cfg.to_dict(), "data": _fingerprint(train_split, val_split, classes)}
    state, best, optimizer_state = TrainState(), state_tensors(model), None
    ckpt = dist.from_main(lambda: _last_checkpoint(out, run_id) if resume else None)  # rank 0 reads it
    if ckpt is not None:
        state, best, optimizer_state = ckpt.state, ckpt.best, ckpt.optimizer
        model.load_state_dict(ckpt.model)
        log.info("resuming %s after %d finished epoch(s)", out, len(state.history))
    weights = _class_weights(train_split.labels, len(classes), compute) if cfg.balance else None
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    earlier_seconds = state.seconds  # spent by the runs this one resumes

    def checkpoint(phase: Phase) -> None:
        state.seconds = earlier_seconds + time.perf_counter() - started
        dist.from_main(  # rank 0 writes it; a failure there stops every process
            lambda: save_checkpoint(
                out / CHECKPOINT, state, state_tensors(model), best, phase.optimizer, run_id
            )
        )

    # -- the phases: a probe on frozen features (pretrained models), then training ---------
    # Each is built when it is reached (the probe's features cost a pass over the data), and
    # a resumed run skips the phases it had finished.
    builders = {
        "probe": lambda: probe_phase(model, train_split, val_split, normalize, cfg, compute, progress, dist),
        "train": lambda: train_phase(
            model, train_split, val_split, normalize, cfg, compute, entry.cfg.pretrained, dist
        ),
    }
    names = [n for n in builders if n != "probe" or (entry.cfg.pretrained and cfg.probe_epochs)]
    if state.phase not in names:  # a fresh run
        state.phase = names[0]
    scaler = compute.grad_scaler()
    features = None  # pre-logits of (train, val) computed by the probe, while the backbone is frozen
    for i, name in enumerate(names[names.index(state.phase) :], start=names.index(state.phase)):
        phase = builders[name]()
        features = phase.features or features
        if optimizer_state is not None and state.epoch > 0:
            phase.optimizer.load_state_dict(optimizer_state)
        while state.epoch < phase.epochs and not state.stopped_early:
            # -- one epoch ----------------------------------------------------------------
            tick, title = time.perf_counter(), f"{name} epoch {state.epoch + 1}/{phase.epochs}"
            batches = phase.batches(state.epoch)
            phase.begin_epoch()
            loss_sum = hits = torch.zeros((), device=compute.device)
            seen = 0
            with progress.task(title, phase.size) as bar:
                for k, batch in enumerate(batches):
                    lr = phase.lr(state.step)
                    loss, logits = train_step(phase, batch, scaler, lr=lr, weights=weights)
                    state.step += 1
                    n = len(batch[1])
                    seen += n
                    loss_sum = loss_sum + loss * n
                    hits = hits + (logits.argmax(1) == compute.to_device(batch[1])).sum()
                    info = None
                    if k % LOG_EVERY == 0:
                        speed = seen / (time.perf_counter() - tick)
                        info = f"loss {loss_sum.item() / seen:.3f} acc {hits.item() / seen:.1%} {speed:.0f} img/s"
                    bar.advance(n, info=info)
            # -- validate (every process: the same logits, the same decisions), keep the best,
            # checkpoint -----------------------------------------------------------------------
            val_logits = phase.validate()
            photos = dist.gather(seen)  # per process
            row = {
                "phase": name,
                "epoch": state.epoch + 1,
                "train_loss": dist.sum(loss_sum).item() / sum(photos),
                "train_acc": dist.sum(hits).item() / sum(photos),
                **_scores(val_logits, torch.from_numpy(val_split.labels), weights),
                "lr": lr,
                "seconds": time.perf_counter() - tick,
                "photos": photos,
            }
            state.history.append(row)
            if row["val_loss"] < state.best_loss - 1e-4:
                state.best_loss, state.best_epoch, state.bad_epochs = (
                    row["val_loss"],
                    len(state.history) - 1,
                    0,
                )
                best = {k: v.clone() for k, v in state_tensors(model).items()}
            else:
                state.bad_epochs += 1
            state.epoch += 1
            stop = phase.patience is not None and state.bad_epochs >= phase.patience
            state.stopped_early = stop and state.epoch < phase.epochs
            if name != "probe":  # the probe's epochs take milliseconds: its best is logged below
                log.info(_epoch_line(row, title))
            checkpoint(phase)
        # The next phase starts from this one's best weights, with its own epochs, steps and
        # early-stopping count (and a resume after this point starts there).
        model.load_state_dict(best)
        if name == "probe":
            log.info(_epoch_line(state.history[state.best_epoch or 0], "probe (best)"))
        if i + 1 < len(names):
            state.phase, state.epoch, state.step, state.bad_epochs, state.stopped_early = (
                names[i + 1],
                0,
                0,
                0,
                False,
            )
            optimizer_state = None
            checkpoint(phase)

    # -- the head finished: the prior blended in, calibrated, the unknown flag set ----------
    model.eval()
    kept_phase = state.history[state.best_epoch]["phase"] if state.best_epoch is not None else "probe"
    pretrained_backbone = entry.cfg.pretrained and (cfg.unfreeze == 0 or kept_phase == "probe")
    if features is None or not pretrained_backbone:
        features = pre_logits_of(
            model,
            (train_split, val_split),
            normalize,
            compute,
            progress,
            dist,
            engine=cfg.engine,
            batch_size=cfg.batch_size,
        )
    val_labels = torch.from_numpy(val_split.labels)
    prior = _blend_prior(model, classes, cfg, features[1], val_labels, pretrained_backbone)
    head = model.get_classifier()
    with torch.no_grad(), compute.autocast():  # as the whole model computes them: bit for bit
        val_logits = head(compute.to_device(features[1])).float().cpu()
    temperature = fit_temperature(val_logits.numpy(), val_split.labels)
    novelty = fit_novelty(features[0], train_split.labels, features[1], rate=cfg.unknown_rate, seed=cfg.seed)
    validation = compute_metrics(val_split.labels, softmax(val_logits.numpy(), temperature), classes)
    log.info(
        "calibration: temperature %.2f (validation ECE %.3f -> %.3f); unknown flag: %d-nearest-neighbour "
        "distance > %.3f (%.0f%% of validation photos)",
        temperature,
        expected_calibration_error(val_split.labels, softmax(val_logits.numpy())),
        validation["ece"],
        novelty.k,
        novelty.threshold,
        100 * novelty.rate,
    )

    digests = dist.gather(weights_digest(model))  # every process ended with the same model

    # -- the bundle: best weights + everything needed to use and judge them ----------------
    meta = {
        "architecture": cfg.model,
        "summary": entry.summary,
        "classes": classes,
        "image_size": cfg.image_size,
        "resize": "squash",
        "precision": cfg.precision,
        "device": compute.device.type,
        "mean": list(entry.cfg.mean),
        "std": list(entry.cfg.std),
        "config": cfg.to_dict(),
        "data": {
            "root": str(Path(data).resolve()),
            "train": len(train_split.labels),
            "val": len(val_split.labels),
            "val_source": val_source,
            "pixels": pixels,
        },
        "history": state.history,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
        "validation": validation,
        "temperature": temperature,
        "prior": prior,
        "novelty": novelty.meta(),
        "skipped": skipped,
        "train_seconds": earlier_seconds + time.perf_counter() - started,
        "distributed": {**dist.describe(), "weights_sha256": digests},
    }
    if len(set(digests)) > 1:
        log.error(
            "the training processes ended with different weights (%s); the bundle has rank 0's", digests
        )
    dist.from_main(lambda: _write_bundle(out, model, meta, novelty))
    log.info("done: validation %s; model in %s", headline(validation), out)
    dist.close()
    return TrainResult(out, meta, dist.main)


# -- helpers ---------------------------------------------------------------------------------


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`out` {out} is a file; give a folder for the model")
    if overwrite:
        for name in (META, WEIGHTS, CHECKPOINT):
            (out / name).unlink(missing_ok=True)
        return
    state = run_state(out)
    if state == "finished":
        raise OutputExistsError(
            f"{out} already holds a trained model; choose another `out` or pass `overwrite=True`",
            path=str(out),
            unfinished=False,
        )
    if state == "unfinished" and not resume:
        raise OutputExistsError(
            f"{out} holds an unfinished training run; pass `resume=True` to continue it or `overwrite=True`",
            path=str(out),
            unfinished=True,
        )


def _last_checkpoint(out: Path, run_id: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint to resume from, if `out` has one, after checking it is this run's."""
    if not (out / CHECKPOINT).exists():
        return None
    ckpt = load_checkpoint(out / CHECKPOINT)
    if ckpt.run != run_id:
        raise ConfigError(
            f"the checkpoint in {out} was made with other options or data; rerun with the "
            "same options, or start over with `overwrite=True` and without `resume`"
        )
    return ckpt


def _write_bundle(out: Path, model: torch.nn.Module, meta: dict[str, Any], novelty: Novelty) -> None:
    novelty.save(out)
    save_bundle(out, model, meta)
    (out / CHECKPOINT).unlink(missing_ok=True)


def _train_val(
    train: list[Sample], val: list[Sample] | None, cfg: TrainConfig
) -> tuple[list[Sample], list[Sample], str]:
    if val:
        return train, val, "val/"
    keep, held = stratified_split(train, cfg.val_fraction, cfg.seed)
    return keep, held, f"{cfg.val_fraction:.0%} of train/ (stratified, seed {cfg.seed})"


def _pixels(
    train: list[Sample], val: list[Sample], size: int, dist: Dist, progress: Progress
) -> tuple[Split, Split, list[dict[str, str]], dict[str, str]]:
    """Both splits' pixels, the photos that did not decode, and how each split is read.

    Decoded once into the decode cache when they fit under its cap, by local rank 0 of each
    machine (the other processes there then map the same file). When they would not fit, the
    training photos stream: decoded by the DataLoader workers as each batch is read (each
    process its share), after a check of which decode. Validation reads every photo every
    epoch, so it stays in the cache when it fits there on its own (as it does unless it is
    itself larger than the cap: it is a fraction of the data), and streams too otherwise."""
    if fits_in_cache(len(train) + len(val), size):
        both = dist.local_main_first(
            lambda: decode_all([s.path for s in train + val], size, progress=progress)
        )
        cut = sum(i < len(train) for i in both.ok)  # `ok` is ordered: training photos first
        rows = _split(both, train + val)
        return (
            Split(rows.images[:cut], rows.labels[:cut], rows.paths[:cut]),
            Split(rows.images[cut:], rows.labels[cut:], rows.paths[cut:]),
            both.skipped,
            {"train": "cache", "val": "cache"},
        )
    splits, skipped, how = [], [], {}
    for name, samples in (("train", train), ("val", val)):
        paths = [s.path for s in samples]
        if name == "val" and fits_in_cache(len(paths), size):
            decoded = dist.local_main_first(lambda paths=paths: decode_all(paths, size, progress=progress))
            how[name] = "cache"
        else:
            decoded = _stream(paths, size, dist, progress)
            how[name] = "stream"
        splits.append(_split(decoded, samples))
        skipped += decoded.skipped
    log.info(
        "streaming: %d photos decoded at %d px would take %.2f GB, more than the decode cache's cap of "
        "%.2f GB (PHOTOCLASS_CACHE_GB); training photos are decoded as they are read, validation "
        "photos %s",
        len(train) + len(val),
        size,
        decoded_gb(len(train) + len(val), size),
        cache_limit_gb(),
        "once, into the cache" if how["val"] == "cache" else "too (they alone exceed the cap)",
    )
    return splits[0], splits[1], skipped, how


def _stream(paths: list[Path], size: int, dist: Dist, progress: Progress) -> Decoded:
    """Photos to decode as they are read, once each process has checked its share of them."""
    mine = dist.rows(len(paths))

    def check() -> tuple[list[int], list[dict[str, str]]]:
        ok, skipped = check_all(paths[mine], progress=progress)
        return [mine.start + i for i in ok], skipped

    shares = dist.gather(dist.everywhere(check))
    ok = [i for share, _ in shares for i in share]
    skipped = [s for _, share in shares for s in share]
    return Decoded(LazyPixels([paths[i] for i in ok], size), ok, skipped)


def _split(decoded: Decoded, samples: list[Sample]) -> Split:
    return Split(
        decoded.images,
        np.asarray([samples[i].label for i in decoded.ok], dtype=np.int64),
        [str(samples[i].path) for i in decoded.ok],
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


def _data_identity(
    root: Path, train: list[Sample], val: list[Sample]
) -> tuple[dict[str, Any], dict[str, str]]:
    """What every process must agree on about the data (the files, wherever the folder is on
    each machine), and how to show it."""
    listing = "\n".join(f"{s.label} {s.path.relative_to(root)}" for s in train + val)
    files = hashlib.sha256(listing.encode()).hexdigest()
    shown = f"{len(train)} training and {len(val)} validation photos in {root.resolve()}"
    return (
        {"photos": (len(train), len(val)), "files": files},
        {"photos": shown, "files": f"{shown}, file list {files[:8]}"},
    )


def _fingerprint(train: Split, val: Split, classes: list[str]) -> str:
    digest = hashlib.sha256("\n".join(classes + train.paths + ["--"] + val.paths).encode())
    return digest.hexdigest()[:16]


def _class_weights(labels: np.ndarray, k: int, compute: Compute) -> torch.Tensor:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return compute.to_device(torch.tensor(len(labels) / (k * counts), dtype=torch.float32))


def _scores(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> dict[str, float]:
    return {
        "val_loss": float(F.cross_entropy(logits, labels, weight=None if weights is None else weights.cpu())),
        "val_acc": float((logits.argmax(1) == labels).float().mean()),
    }


def _blend_prior(
    model: ImageClassifier,
    classes: list[str],
    cfg: TrainConfig,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    pretrained_backbone: bool,
) -> dict[str, Any]:
    """Blend the pretrained classifier's matching classes into the head where they help
    (`photoclass.training.prior`); what was done, for the bundle."""
    if not cfg.prior:
        return record(None, 0.0, "not used (`prior=0`)")
    prior, matched = find_prior(model, classes)
    if prior is None:
        log.info("no ImageNet prior: %s; the trained head is used alone", matched)
        return record(None, 0.0, matched)
    if not pretrained_backbone:
        reason = (
            "not used: the backbone was fine-tuned, and ImageNet's classifier reads the original features"
        )
        log.info("no ImageNet prior: %s", reason)
        return record(prior, 0.0, f"{matched} ({reason})")
    accuracy = prior.accuracy(val_features, val_labels)
    if not prior_good_enough(accuracy, len(classes)):
        log.info("ImageNet prior (%s) ignored: it scores only %.1f%% on validation", matched, 100 * accuracy)
        return record(prior, 0.0, matched, accuracy)
    blend(model.get_classifier(), prior, cfg.prior)
    log.info(
        "ImageNet prior: %s (alone %.1f%% on validation), weight %.2f", matched, 100 * accuracy, cfg.prior
    )
    return record(prior, cfg.prior, matched, accuracy)


def _epoch_line(row: dict[str, Any], title: str) -> str:
    return (
        f"{title}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%} | "
        f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.1%}"
    )
