"""This CPU's limit for a batch-5 seed-cnn epoch: its optimizer steps alone, nothing else.

    python bench/step_limit.py                          # 400 + 100 photos, auto and fp32
    python bench/step_limit.py --keras-epoch-s 19.6     # and the limit's ratio to a Keras epoch

photoclass's own training step (`training.phases.train_step`, on the phase that
`training.phases.train_phase` builds for seed-cnn's recipe: the same model, optimizer,
channels-last layout and autocast as `photoclass train --model seed-cnn`) timed on batches
that are already decoded, augmented, normalised and in memory, then the validation pass
(`Phase.validate`) over the validation photos. That is the least an epoch can take in that
arithmetic on this CPU, whatever the data pipeline does: `photos / 5` steps plus one
validation pass. bench/train.py runs it beside its epoch timings; against the Keras epoch
measured there (or `--keras-epoch-s`), it says how far the 2x goal is reachable here, and
how close photoclass's whole epoch comes to it. Median of `--repeats` timed epochs after one
untimed (oneDNN sets up its kernels for each shape then), in a process set up as the command
sets itself up (jemalloc, OpenMP threads that sleep: `_common.as_the_command`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import as_the_command, banner, cpu, median, table

from photoclass.config import TrainConfig
from photoclass.data.preprocess import Normalize
from photoclass.models import create_model, get_model_entry
from photoclass.runtime import Compute
from photoclass.training.phases import Phase, Split, train_phase, train_step

MODEL = "seed-cnn"


def step_limit(precision: str, photos: int = 400, val_photos: int = 100, repeats: int = 3) -> dict:
    """Seconds of one epoch's steps and of its validation pass (medians), in `precision`
    ("auto" resolved as `photoclass train` resolves it)."""
    phase, batches, scaler, lr = _setup(precision, photos, val_photos)
    steps, validation = [], []
    for _ in range(repeats + 1):
        phase.begin_epoch()
        tick = time.perf_counter()
        for batch in batches:
            train_step(phase, batch, scaler, lr=lr)
        steps.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        phase.validate()
        validation.append(time.perf_counter() - tick)
    steps, validation = steps[1:], validation[1:]
    return {
        "precision": phase.compute.precision,
        "steps": len(batches),
        "steps_s": median(steps),
        "validation_s": median(validation),
        "epoch_s": median(steps) + median(validation),
    }


def profile(precision: str, steps: int = 20) -> str:
    """The operations `steps` training steps spend their time in, most first."""
    phase, batches, scaler, lr = _setup(precision, 5 * steps, 5)
    phase.begin_epoch()
    for batch in batches[:2]:  # kernels set up
        train_step(phase, batch, scaler, lr=lr)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for batch in batches:
            train_step(phase, batch, scaler, lr=lr)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def _setup(precision: str, photos: int, val_photos: int) -> tuple[Phase, list, torch.amp.GradScaler, float]:
    entry = get_model_entry(MODEL)
    cfg = entry.resolve(TrainConfig(model=MODEL, precision=precision))
    compute = Compute.create("cpu", cfg.precision)
    rng = np.random.default_rng(0)
    size = cfg.image_size

    def split(n: int) -> Split:
        pixels = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        return Split(pixels, np.arange(n) % 2, [f"{i}.jpg" for i in range(n)])

    train, val = split(photos), split(val_photos)
    torch.manual_seed(0)
    model = create_model(MODEL, 2, size).to(compute.device, memory_format=torch.channels_last)
    phase = train_phase(model, train, val, Normalize(entry.cfg.mean, entry.cfg.std), cfg, compute, False)
    # The batches as the loader hands them over, kept: the steps alone are timed.
    return phase, list(phase.batches(0)), compute.grad_scaler(), cfg.lr


def report(limits: dict[str, dict], photos: int, val_photos: int, keras_epoch_s: float | None) -> None:
    rows = [
        [
            f"{precision} ({r['precision']})" if precision == "auto" else precision,
            r["steps"],
            r["steps_s"] / r["steps"] * 1000,
            r["steps_s"],
            r["validation_s"],
            r["epoch_s"],
            keras_epoch_s / r["epoch_s"] if keras_epoch_s else "-",
        ]
        for precision, r in limits.items()
    ]
    print(
        table(
            ["precision", "steps", "ms/step", "steps s", "validation s", "least epoch s", "x Keras epoch"],
            rows,
            title=f"{MODEL}, {photos} + {val_photos} photos, batch 5: the steps alone (no data pipeline)",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--val-photos", type=int, default=100)
    parser.add_argument("--precisions", default="auto,fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keras-epoch-s", type=float, help="a Keras epoch on the same photos, this CPU")
    parser.add_argument(
        "--profile", action="store_true", help="also the operations a step spends its time in"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    as_the_command()
    print(cpu())
    banner(f"{MODEL}: the least an epoch of batch-5 steps takes on this CPU")
    limits = {
        p: step_limit(p, args.photos, args.val_photos, args.repeats)
        for p in dict.fromkeys(args.precisions.split(","))
    }
    report(limits, args.photos, args.val_photos, args.keras_epoch_s)
    if args.json:
        args.json.write_text(json.dumps(limits, indent=1))
    if args.profile:
        for precision in limits:
            print(f"\nwhere a step's time goes, {precision} (torch.profiler, 20 steps, self CPU time):")
            print(profile(precision))


if __name__ == "__main__":
    main()
