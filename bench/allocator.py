"""Memory allocator: photoclass's training and inference throughput under four allocators.

    python bench/allocator.py             # 4 workloads x 4 allocators x 3 repeats, ~8 s each (~15 min)
    python bench/allocator.py --quick     # 1 repeat, ~4 s each, seed-cnn and lite0 fine-tune only (~3 min)
    python bench/allocator.py --repeats 5 --seconds 15 --workloads lite0-finetune,lite0-infer

Each measurement is a fresh subprocess (`--worker`) that builds a model from photoclass's
registry and runs the training loop's own step (`photoclass.training.phases.train_step`:
channels-last input, frozen layers without gradients, the recipe's arithmetic, optimizer and
loss) on random pixels, so the allocator is the only difference:
- system:   glibc malloc untouched (PHOTOCLASS_ALLOCATOR=system)
- glibc:    glibc tuned by `mallopt` in-process, what `import photoclass` does (PHOTOCLASS_ALLOCATOR=glibc)
- jemalloc: Debian's libjemalloc2 preloaded (LD_PRELOAD), its default settings (no MALLOC_CONF)
- jemalloc-nodecay: preloaded with MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1, what the
  `photoclass` command does by re-executing itself
The four runs of a workload are interleaved (rotating the order each repeat) so drift on a
shared machine hits them alike. Reported: median images/s, the ratio to `system`, and per 100
images the user and system CPU seconds and minor page faults of the timed steps (imports and
warm-up excluded). Augmentation runs in separate worker processes in real training and is
left out here.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

from _common import banner, machine, median, run, table

MODES = ("system", "glibc", "jemalloc", "jemalloc-nodecay")
# Not run by default: what the CLI would get if it also told OpenMP's idle threads to sleep
# rather than spin (they spin for a while by default, which starves the working threads when
# the cores are shared with augmentation workers or other processes).
# Any mode with "-passive" appended adds OMP_WAIT_POLICY=PASSIVE.
EXTRA_MODES = ("jemalloc-nodecay-passive",)
# name: (model, image size, batch, what runs)
WORKLOADS = {
    "seed-cnn-train": ("seed-cnn", 300, 5, "train"),
    "small-cnn-train": ("small-cnn", 128, 32, "train"),
    "lite0-finetune": ("efficientnet-lite0", 224, 32, "finetune"),
    "lite0-infer": ("efficientnet-lite0", 224, 32, "infer"),
}
QUICK = ("seed-cnn-train", "lite0-finetune")


def mode_env(mode: str) -> dict[str, str | None]:
    from photoclass import runtime

    passive = {"OMP_WAIT_POLICY": "PASSIVE"} if mode.endswith("-passive") else {"OMP_WAIT_POLICY": None}
    mode = mode.removesuffix("-passive")
    if mode not in MODES:
        raise SystemExit(f"unknown allocator mode {mode!r}; choose from {', '.join(MODES + EXTRA_MODES)}")
    if mode in ("system", "glibc"):
        return {"PHOTOCLASS_ALLOCATOR": mode, "LD_PRELOAD": None, "MALLOC_CONF": None, **passive}
    library = runtime.find_jemalloc()
    if library is None:
        raise SystemExit(
            "jemalloc is not installed (apt-get install libjemalloc2); run with --modes system,glibc"
        )
    conf = runtime.JEMALLOC_CONF if mode == "jemalloc-nodecay" else None
    return {"PHOTOCLASS_ALLOCATOR": "jemalloc", "LD_PRELOAD": library, "MALLOC_CONF": conf, **passive}


def worker(name: str, seconds: float) -> None:
    """Runs in the measured subprocess: build, warm up, time steps, print one JSON line."""
    import resource
    import time

    import numpy as np
    import torch

    from photoclass import runtime
    from photoclass.config import TrainConfig
    from photoclass.data.preprocess import Normalize
    from photoclass.models import create_model, get_model_entry
    from photoclass.runtime import Compute
    from photoclass.training.phases import Split, train_phase, train_step

    runtime.tune_allocator()  # as `import photoclass.api` does; a no-op for system and jemalloc
    arch, size, batch, what = WORKLOADS[name]
    entry = get_model_entry(arch)
    torch.manual_seed(0)
    model = create_model(arch, 2, size, pretrained=False).to(memory_format=torch.channels_last)
    normalize = Normalize(entry.cfg.mean, entry.cfg.std)
    pixels = torch.randint(0, 256, (4, batch, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 2, (batch,))
    if what == "infer":
        model.eval()

        def step(i: int) -> None:
            with torch.inference_mode():
                model(normalize(pixels[i % 4]))

    else:
        # The training loop's own phase and step: the layers it trains (all, or the last
        # blocks when fine-tuning), its optimizer, arithmetic and loss.
        cfg = entry.resolve(TrainConfig(model=arch, device="cpu"))
        compute = Compute.create("cpu", cfg.precision)
        images = np.zeros((batch, size, size, 3), dtype=np.uint8)
        split = Split(images, np.zeros(batch, dtype=np.int64), [])
        phase = train_phase(model, split, split, normalize, cfg, compute, pretrained=what == "finetune")
        phase.begin_epoch()
        scaler = compute.grad_scaler()

        def step(i: int) -> None:
            train_step(phase, (pixels[i % 4], labels), scaler, lr=cfg.lr)

    for i in range(3):  # warm-up: oneDNN primitives, the allocator's first growth
        step(i)
    before, tick, steps = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    while steps < 3 or time.perf_counter() - tick < seconds:
        step(steps)
        steps += 1
    wall = time.perf_counter() - tick
    after = resource.getrusage(resource.RUSAGE_SELF)
    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
    print(
        json.dumps(
            {
                "images": steps * batch,
                "wall": wall,
                "user": after.ru_utime - before.ru_utime,
                "sys": after.ru_stime - before.ru_stime,
                "minflt": after.ru_minflt - before.ru_minflt,
                "jemalloc": "jemalloc" in maps,
                "threads": torch.get_num_threads(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per measurement")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES + EXTRA_MODES)}"
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat of 4 s, two workloads")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.seconds)
    if args.quick:
        args.repeats, args.seconds, args.workloads = 1, 4.0, ",".join(QUICK)
    workloads, modes = args.workloads.split(","), args.modes.split(",")
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(machine())
    results: dict[tuple[str, str], list[dict]] = {}
    for rep in range(args.repeats):
        banner(f"repeat {rep + 1}/{args.repeats}")
        for name in workloads:
            order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
            for mode in order:
                cmd = [sys.executable, __file__, "--worker", name, "--seconds", str(args.seconds)]
                out = run(cmd, env=mode_env(mode))
                row = json.loads(out.stdout.strip().splitlines()[-1])
                if row["jemalloc"] != mode.startswith("jemalloc"):
                    raise SystemExit(f"{mode}: jemalloc loaded = {row['jemalloc']}; the measurement is void")
                results.setdefault((name, mode), []).append(row)
                print(f"  {name:16} {mode:17} {row['images'] / row['wall']:7.1f} img/s", flush=True)

    rows, ratios = [], {m: [] for m in modes}
    for name in workloads:
        base = median([r["images"] / r["wall"] for r in results[(name, modes[0])]])
        for mode in modes:
            runs = results[(name, mode)]
            speed = median([r["images"] / r["wall"] for r in runs])
            ratios[mode].append(speed / base)

            def per100(key: str, runs=runs) -> float:
                return median([100 * r[key] / r["images"] for r in runs])

            rows.append(
                [
                    name,
                    mode,
                    speed,
                    f"{speed / base:.2f}x",
                    per100("user"),
                    per100("sys"),
                    f"{per100('minflt'):.0f}",
                ]
            )
    print()
    headers = ["workload", "allocator", "img/s", f"vs {modes[0]}", "user s/100", "sys s/100", "faults/100"]
    title = f"median of {args.repeats} run(s) of {args.seconds:.0f} s each; per-100-image CPU seconds and minor faults"
    print(table(headers, rows, title=title))
    geo = {m: math.exp(sum(map(math.log, r)) / len(r)) for m, r in ratios.items()}
    print()
    print(table(["allocator", f"geometric mean vs {modes[0]}"], [[m, f"{g:.2f}x"] for m, g in geo.items()]))
    best = max(geo, key=geo.get)
    print(f"\nfastest overall: {best} ({geo[best]:.2f}x {modes[0]})")
    print(machine())


if __name__ == "__main__":
    main()
