"""The README's results table: each model trained on cats-owls train/ with its default recipe,
judged on val/, through the real CLI, timed end to end (start-up and decoding included, with a
cold decode cache).

    python bench/models.py                              # all three (~20 minutes on 2 cores)
    python bench/models.py efficientnet-lite0 small-cnn

Prints, per model: wall time of the whole `photoclass train` command, validation accuracy
with its 95% interval and loss, epochs run, and the per-epoch training time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA

MODELS = ("efficientnet-lite0", "small-cnn", "seed-cnn")


def train(model: str, data: Path, work: Path) -> dict:
    out = work / model
    env = {**os.environ, "PHOTOCLASS_CACHE": str(work / f"cache-{model}")}  # cold: decoding counts
    command = [sys.executable, "-m", "photoclass", "train", str(data), "--out", str(out), "--model", model]
    print("$", " ".join(command[2:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    meta = json.loads((out / "photoclass.json").read_text())
    epochs = [row for row in meta["history"] if row["phase"] == "train"]
    return {"model": model, "wall": wall, "val": meta["validation"], "epochs": epochs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(MODELS)} (default: all three)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    with tempfile.TemporaryDirectory() as tmp:
        results = [train(model, args.data, Path(tmp)) for model in args.models or MODELS]
    print("\n| model | `photoclass train` wall | val accuracy (95% CI) | val loss | epochs | s/epoch |")
    print("|---|---|---|---|---|---|")
    for r in results:
        v = r["val"]
        low, high = v["accuracy_ci95"]
        per_epoch = sorted(e["seconds"] for e in r["epochs"])
        median = per_epoch[len(per_epoch) // 2] if per_epoch else float("nan")
        print(
            f"| {r['model']} | {r['wall'] / 60:.1f} min | {v['accuracy']:.1%} ({low:.1%}-{high:.1%}), "
            f"{v['correct']}/{v['n']} | {v['loss']:.3f} | {len(r['epochs'])} | {median:.0f} |"
        )


if __name__ == "__main__":
    main()
