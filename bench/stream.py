"""Data larger than the decode cache: one epoch of small-cnn streamed vs from the cache.

    python bench/stream.py               # 5,000 and 20,000 photos, 2 repeats (~5 min on 2 cores)
    python bench/stream.py --quick       # 1,000 and 4,000 photos, 1 repeat (~1 min)
    python bench/stream.py --sizes 5000,20000,50000 --repeats 3

Generated photos (the drawn shapes of the test suite, `tests/conftest.py:shapes_dataset`: 48 px
JPEGs of three classes, plus 500 validation photos) are written to a temporary folder, one set
per size. Each set is trained for one epoch (`photoclass train --model small-cnn --image-size 48
--epochs 1 --workers 2`, a fresh subprocess each time) two ways:
- cache:  the default cap (20 GB): every photo is decoded once into the decode cache (cold:
  PHOTOCLASS_CACHE is a fresh folder, so the decoding is inside the command's time), then the
  epoch reads the memory-mapped pixels;
- stream: PHOTOCLASS_CACHE_GB=0.01, far below the set's decoded size: the training photos are
  checked, then decoded by the DataLoader workers as each batch is read; validation (500
  photos, 3.5 MB) still fits under the cap, and is cached.
Reported per size and way: photos/s of the epoch (the training photos over the epoch's seconds
in the bundle's history, validation included), the whole command's wall seconds, and the
main process's peak resident memory (max RSS from wait4: the largest process; workers are
separate, smaller processes) and CPU seconds (user + system, the command and its workers:
less sensitive than wall seconds to other jobs on the machine). Streaming's memory must not grow with the set (it holds a few
batches), while the cache's does (its pages are mapped into the process).

The machine is shared: trust the ratios (stream vs cache, run back to back) over the seconds.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from _common import PHOTOCLASS, ROOT, banner, cpu, machine, median, run, table

sys.path.insert(0, str(ROOT))
from tests.conftest import SHAPES, shapes_dataset  # noqa: E402  (the test suite's generator)

VAL_PER_CLASS = 167  # ~500 validation photos
TRAIN = shlex.split("--model small-cnn --image-size 48 --epochs 1 --workers 2 --batch-size 32")
STREAM_CAP_GB = "0.01"


def generate(root: Path, photos: int) -> Path:
    per_class = -(-photos // len(SHAPES))
    return shapes_dataset(root, SHAPES, {"train": per_class, "val": VAL_PER_CLASS}, seed=photos)


def train(data: Path, out: Path, cache: Path, way: str) -> dict:
    env = {"PHOTOCLASS_CACHE": str(cache), "COLUMNS": "120"}
    if way == "stream":
        env["PHOTOCLASS_CACHE_GB"] = STREAM_CAP_GB
    cmd = [*PHOTOCLASS, "train", str(data), "--out", str(out), *TRAIN]
    shown = " ".join(f"{k}={v}" for k, v in env.items() if k != "COLUMNS")
    print("$", shown, shlex.join(["photoclass", *cmd[3:]]), flush=True)
    result = run(cmd, env=env)
    meta = json.loads((out / "photoclass.json").read_text())
    assert meta["data"]["pixels"]["train"] == way, meta["data"]["pixels"]
    epoch = meta["history"][0]
    return {
        "photos/s": meta["data"]["train"] / epoch["seconds"],
        "wall": result.wall,
        "cpu": result.user + result.sys,
        "rss": result.max_rss_mb,
        "acc": epoch["val_acc"],
        "streaming_line": next((ln for ln in result.stderr.splitlines() if ln.startswith("streaming")), ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="5000,20000", help="training-set sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1,000 and 4,000 photos, one repeat")
    args = parser.parse_args()
    sizes = [1000, 4000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeats = 1 if args.quick else args.repeats
    print(cpu(), machine(), sep="\n", flush=True)

    with tempfile.TemporaryDirectory(prefix="photoclass-stream-") as tmp:
        root = Path(tmp)
        banner(f"generating {', '.join(map(str, sizes))} photos (+{3 * VAL_PER_CLASS} validation each)")
        sets = {n: generate(root / f"shapes-{n}", n) for n in sizes}
        found: dict[tuple[int, str], list[dict]] = {}
        for r in range(repeats):
            for n in sizes:
                banner(f"{n} photos, repeat {r + 1}/{repeats}")
                order = ("cache", "stream") if r % 2 == 0 else ("stream", "cache")  # drift hits both
                for way in order:
                    cache = root / f"cache-{n}-{way}-{r}"  # cold every time
                    measured = train(sets[n], root / f"model-{n}-{way}-{r}", cache, way)
                    found.setdefault((n, way), []).append(measured)
                    shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in measured.items()}
                    print("  ", {k: v for k, v in shown.items() if k != "streaming_line"}, flush=True)
        print()
        rows = []
        for n in sizes:
            for way in ("cache", "stream"):
                runs = found[(n, way)]
                rows.append(
                    [
                        f"{way}, {n} photos",
                        median([m["photos/s"] for m in runs]),
                        median([m["wall"] for m in runs]),
                        median([m["cpu"] for m in runs]),
                        max(m["rss"] for m in runs),
                        f"{runs[-1]['acc']:.1%}",
                    ]
                )
        print(
            table(
                [
                    "one epoch of small-cnn, 48 px",
                    "epoch photos/s",
                    "command s",
                    "CPU s",
                    "peak RSS MB",
                    "val acc",
                ],
                rows,
                title=f"medians of {repeats} run(s); cache: cold decode cache, default cap; "
                f"stream: PHOTOCLASS_CACHE_GB={STREAM_CAP_GB}",
            )
        )
        print()
        for n in sizes:
            cache, stream = (median([m["photos/s"] for m in found[(n, w)]]) for w in ("cache", "stream"))
            print(f"{n} photos: streaming trains at {stream / cache:.2f}x the cached epoch's photos/s")
        small, large = sizes[0], sizes[-1]
        for way in ("cache", "stream"):
            a, b = (max(m["rss"] for m in found[(n, way)]) for n in (small, large))
            print(f"peak RSS, {way}: {a:.0f} MB at {small} photos, {b:.0f} MB at {large} ({b / a:.2f}x)")
        print(f"\nlog line of a streamed run: {found[(large, 'stream')][-1]['streaming_line']}")
        print(f"\nafter: {machine()}")


if __name__ == "__main__":
    main()
