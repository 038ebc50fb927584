"""Training, top to bottom: choose the device and arithmetic, scan the folder, decode every
photo once, build the model, run its phases (a probe on frozen features for pretrained models,
then training with augmentation), validate every epoch, stop early on validation loss, keep
the best weights, checkpoint every epoch, write the bundle.

    photoclass train data/cats-owls --out models/cats-owls
    photoclass train data/cats-owls --out models/ref --model seed-cnn      # the tutorial
    photoclass train data/cats-owls --out models/cats-owls --resume        # after a crash
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
from photoclass.data.cache import Decoded, decode_all
from photoclass.data.folder import Sample, scan_dataset, stratified_split
from photoclass.data.preprocess import Normalize
from photoclass.errors import ConfigError, DatasetError, OutputExistsError
from photoclass.evaluation.calibration import expected_calibration_error, fit_temperature, softmax
from photoclass.evaluation.metrics import compute_metrics, headline
from photoclass.models import ImageClassifier, create_model, get_model_entry
from photoclass.prediction.novelty import fit_novelty, pre_logits
from photoclass.progress import NO_PROGRESS, Progress
from photoclass.runtime import Compute
from photoclass.training.checkpoint import NAME as CHECKPOINT
from photoclass.training.checkpoint import TrainState, load_checkpoint, run_state, save_checkpoint
from photoclass.training.phases import Phase, Split, probe_phase, train_phase, train_step
from photoclass.training.prior import blend, find_prior, record
from photoclass.training.prior import good_enough as prior_good_enough

log = logging.getLogger(__name__)
LOG_EVERY = 10  # steps between reads of the running loss (each read waits for a GPU)


@dataclass
class TrainResult:
    """What `train` returns: where the bundle is, its metadata, and validation metrics."""

    out: Path
    meta: dict[str, Any]

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
    """
    started = time.perf_counter()

    # -- the run: every option settled, the device and arithmetic chosen once --------------
    entry = get_model_entry((config or TrainConfig()).model)
    cfg = entry.resolve(config or TrainConfig())
    compute = Compute.create(cfg.device, cfg.precision)
    out = Path(out)
    _check_out(out, resume, overwrite)

    # -- data: scan, split, decode each photo exactly once ---------------------------------
    dataset = scan_dataset(Path(data), follow_symlinks=follow_symlinks)
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
    model = create_model(cfg.model, len(classes), cfg.image_size).to(
        compute.device, memory_format=torch.channels_last
    )
    normalize = Normalize(entry.cfg.mean, entry.cfg.std)
    run_id = {"config": cfg.to_dict(), "data": _fingerprint(train_split, val_split, classes)}
    state, best, optimizer_state = TrainState(), state_tensors(model), None
    if resume and (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out / CHECKPOINT)
        if ckpt.run != run_id:
            raise ConfigError(
                f"the checkpoint in {out} was made with other options or data; rerun with the "
                "same options, or start over with `overwrite=True` and without `resume`"
            )
        state, best, optimizer_state = ckpt.state, ckpt.best, ckpt.optimizer
        model.load_state_dict(ckpt.model)
        log.info("resuming %s after %d finished epoch(s)", out, len(state.history))
    weights = _class_weights(train_split.labels, len(classes), compute) if cfg.balance else None
    out.mkdir(parents=True, exist_ok=True)
    earlier_seconds = state.seconds  # spent by the runs this one resumes

    def checkpoint(phase: Phase) -> None:
        state.seconds = earlier_seconds + time.perf_counter() - started
        save_checkpoint(out / CHECKPOINT, state, state_tensors(model), best, phase.optimizer, run_id)

    # -- the phases: a probe on frozen features (pretrained models), then training ---------
    # Each is built when it is reached (the probe's features cost a pass over the data), and
    # a resumed run skips the phases it had finished.
    builders = {
        "probe": lambda: probe_phase(model, train_split, val_split, normalize, cfg, compute, progress),
        "train": lambda: train_phase(
            model, train_split, val_split, normalize, cfg, compute, entry.cfg.pretrained
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
            # -- validate, keep the best, checkpoint ------------------------------------------
            val_logits = phase.validate()
            row = {
                "phase": name,
                "epoch": state.epoch + 1,
                "train_loss": loss_sum.item() / seen,
                "train_acc": hits.item() / seen,
                **_scores(val_logits, torch.from_numpy(val_split.labels), weights),
                "lr": lr,
                "seconds": time.perf_counter() - tick,
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
        features = tuple(
            pre_logits(
                model, split.images, normalize, compute=compute, batch_size=cfg.batch_size,
                progress=progress, description=f"features ({split_name})",
            )
            for split_name, split in (("train", train_split), ("val", val_split))
        )  # fmt: skip
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
        },
        "history": state.history,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
        "validation": validation,
        "temperature": temperature,
        "prior": prior,
        "novelty": novelty.meta(),
        "skipped": decoded.skipped,
        "train_seconds": earlier_seconds + time.perf_counter() - started,
    }
    novelty.save(out)
    save_bundle(out, model, meta)
    (out / CHECKPOINT).unlink(missing_ok=True)
    log.info("done: validation %s; model in %s", headline(validation), out)
    return TrainResult(out, meta)


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


def _train_val(
    train: list[Sample], val: list[Sample] | None, cfg: TrainConfig
) -> tuple[list[Sample], list[Sample], str]:
    if val:
        return train, val, "val/"
    keep, held = stratified_split(train, cfg.val_fraction, cfg.seed)
    return keep, held, f"{cfg.val_fraction:.0%} of train/ (stratified, seed {cfg.seed})"


def _split_decoded(decoded: Decoded, train: list[Sample], val: list[Sample]) -> tuple[Split, Split]:
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
