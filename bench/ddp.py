"""One model, two processes: a small-cnn epoch trained by 1 process and by 2 (torchrun, gloo).

    python bench/ddp.py                  # 2,000 cats-owls photos, 2 epochs per run, 2 repeats (~6 min)
    python bench/ddp.py --quick          # 400 photos, 1 repeat (~2 min)
    python bench/ddp.py --photos 1000 --repeats 3

The same command both ways, on the same photos (a stratified subset of cats-owls, symbolic
links, or the whole set) and the same warm decode cache:
    photoclass train DATA --out M --model small-cnn --epochs 2
    python -m torch.distributed.run --nproc-per-node 2 -m photoclass train DATA --out M --model small-cnn --epochs 2 --workers 1
One process gets the machine's cores as OpenMP threads and 2 augmentation workers; each of
the two processes gets one thread (torchrun sets OMP_NUM_THREADS=1) and one worker, so both
use the same cores. A third run is one process with one thread (OMP_NUM_THREADS=1), what each
of the two processes has: on a loaded machine, OpenMP threads that wait for each other at
every operation lose far more than single-threaded processes do, and this row tells that
apart from what two processes change. Reported: the median seconds of the second epoch (the first pays for
starting the workers), its photos/s (all processes together), the whole command's wall time,
the largest process's peak RSS, the ratio, and that the two processes ended with the same
weights (the bundle's `distributed.weights_sha256`).

On a 2-core machine two processes are not expected to be faster: the cores are the same, and
the processes exchange gradients every step. The run proves the mechanism (torchrun, gloo,
each process on its half of the photos, one bundle); the speed-up comes with one GPU per
process (README "Scaling out").
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from _common import DATA, PHOTOCLASS, banner, cpu, machine, median, run, stratified_subset, table

TRAIN = shlex.split("--model small-cnn --epochs 2")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29577"]


# name: (processes, extra environment)
RUNS = {
    "1 process": (1, {}),
    "1 process, 1 thread": (1, {"OMP_NUM_THREADS": "1"}),
    "2 processes": (2, {}),
}


def train(data: Path, out: Path, cache: Path, processes: int, env: dict[str, str]) -> dict:
    if processes == 1:
        cmd = [*PHOTOCLASS, "train", str(data), "--out", str(out), *TRAIN]
    else:
        cmd = [*TORCHRUN, "-m", "photoclass", "train", str(data), "--out", str(out), *TRAIN, "--workers", "1"]
    shown = "".join(f"{k}={v} " for k, v in env.items())
    print("$", shown + shlex.join(cmd).replace(sys.executable, "python"), flush=True)
    result = run(cmd, env={"PHOTOCLASS_CACHE": str(cache), "COLUMNS": "120", **env})
    meta = json.loads((out / "photoclass.json").read_text())
    epoch = meta["history"][-1]
    return {
        "seconds": epoch["seconds"],
        "photos/s": sum(epoch["photos"]) / epoch["seconds"],
        "per process": epoch["photos"],
        "wall": result.wall,
        "rss": result.max_rss_mb,
        "same weights": len(set(meta["distributed"]["weights_sha256"])) == 1,
        "acc": meta["validation"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=2000, help="training photos (of cats-owls' 2,000)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="400 photos, one repeat")
    args = parser.parse_args()
    photos, repeats = (400, 1) if args.quick else (args.photos, args.repeats)
    print(cpu(), machine(), sep="\n", flush=True)

    with tempfile.TemporaryDirectory(prefix="photoclass-ddp-") as tmp:
        root = Path(tmp)
        data = stratified_subset(DATA, photos, root / "subset")
        cache = root / "cache"
        banner("warming the decode cache (one epoch, not measured)")
        run([*PHOTOCLASS, "train", str(data), "--out", str(root / "warm"), "--model", "small-cnn", "--epochs", "0"],
            env={"PHOTOCLASS_CACHE": str(cache)})  # fmt: skip
        found: dict[str, list[dict]] = {name: [] for name in RUNS}
        for r in range(repeats):
            banner(f"repeat {r + 1}/{repeats}")
            for i, name in enumerate(RUNS if r % 2 == 0 else reversed(RUNS)):  # drift hits all alike
                processes, env = RUNS[name]
                found[name].append(train(data, root / f"m{i}-{r}", cache, processes, env))
        rows = []
        for name, runs in found.items():
            rows.append(
                [
                    name,
                    median([m["seconds"] for m in runs]),
                    median([m["photos/s"] for m in runs]),
                    "+".join(map(str, runs[-1]["per process"])),
                    median([m["wall"] for m in runs]),
                    max(m["rss"] for m in runs),
                    f"{runs[-1]['acc']:.1%}",
                    all(m["same weights"] for m in runs),
                ]
            )
        print()
        print(
            table(
                [
                    "small-cnn, 128 px",
                    "epoch s",
                    "photos/s",
                    "photos/process",
                    "command s",
                    "peak RSS MB",
                    "val acc",
                    "same weights",
                ],
                rows,
                title=f"second epoch of 2, medians of {repeats} run(s); {photos} training photos",
            )  # fmt: skip
        )
        speed = {name: median([m["photos/s"] for m in runs]) for name, runs in found.items()}
        print()
        for name in ("1 process", "1 process, 1 thread"):
            print(f"2 processes train at {speed['2 processes'] / speed[name]:.2f}x the photos/s of {name}")
        print(f"\nafter: {machine()}")


if __name__ == "__main__":
    main()
