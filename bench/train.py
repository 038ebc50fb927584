"""Training speed: photoclass against the reference Keras pipeline, and time to accuracy.

    python bench/train.py --tf-python /path/to/tf-venv/bin/python   # ~15 min on 2 cores
    python bench/train.py --quick          # 100 photos, 2 epochs, then lite0 (~5-10 min)
    python bench/train.py --small-cnn      # also small-cnn's whole recipe (+10-30 min)
    python bench/train.py --small-cnn --small-cnn-args "--epochs 17 --train-size-ratio 0.625"  # (+3 min)
    python bench/train.py --seed-recipe    # also photoclass's own 5-epoch seed-cnn run (+20-30 min)
    python bench/train.py --photos 2000 --epochs 5   # the reference's whole run in part 1 (~1 h)
    python bench/train.py --skip-epochs    # time to accuracy only

1. Epoch speed. seed-cnn at 300 px with the reference recipe (batch 5, RMSprop, shear 0.2, zoom
   0.2, flips) through photoclass's real training loop (`photoclass train --model seed-cnn` in
   a subprocess; per-epoch `seconds` read from the bundle's photoclass.json history), once per
   `--precisions` (default: the recipe's "auto", bf16 where the CPU has it natively, and fp32;
   where auto is fp32 the second is not rerun), and the reference Keras pipeline
   (`bench/keras_reference.py`: ImageDataGenerator.flow_from_directory + the same
   architecture, TensorFlow CPU, run with the interpreter given by `--tf-python` or
   $TF_PYTHON), interleaved on the same photos: a stratified subset of cats-owls (`--photos`
   training photos and a quarter as many validation photos, as symbolic links). Both epoch
   times include the validation pass. Reported: median seconds per epoch, the ratio, the whole
   command's wall time and each process's peak resident memory.
2. Time to accuracy on the full cats-owls set. The default recipe (`photoclass train DATA --out
   M`: efficientnet-lite0), whole command wall time with a cold cache (PHOTOCLASS_CACHE set to
   a fresh folder: every photo decoded, every ONNX graph exported inside the timing), and its
   validation accuracy; against the reference recipe, 5 Keras epochs on the full set, timed on
   this CPU: from part 1 (scaled to 2,000 + 500 photos when it ran on a subset), and for
   context the reference's recorded 26 min (another machine) and, with `--seed-recipe`,
   photoclass's own 5-epoch seed-cnn run.
3. With `--small-cnn`: small-cnn's recipe on the full set, whole command, cold cache; its time
   to 95% validation accuracy (start-up and decoding plus the epochs up to the first one at or
   over 95%) against a third of the reference recipe's time from part 2, and how many epochs
   fit in that budget. `--small-cnn-args` changes the recipe, e.g. "--epochs 17
   --train-size-ratio 0.625" (bench/all.py's fast run).

The machines are shared: run it when they are quiet, and trust the ratios more than the
absolute seconds. The data is read in place (PHOTOCLASS_BENCH_DATA overrides its location).
`--json PATH` writes the figures for `bench/all.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from _common import (
    DATA,
    PHOTOCLASS,
    ROOT,
    banner,
    cpu_summary,
    machine,
    median,
    run,
    stratified_subset,
    table,
)

# The reference re-run recorded in shared/reference/reference-system.md (on another machine).
REFERENCE_MINUTES, REFERENCE_ACCURACY = 26.0, 0.916
FULL_TRAIN, FULL_VAL = 2000, 500  # cats-owls
TARGET_EPOCH_SPEEDUP, TARGET_ACCURACY, TARGET_TTA_SPEEDUP = 2.0, 0.995, 10.0
SMALL_CNN_ACCURACY, SMALL_CNN_SHARE = 0.95, 1 / 3

PHOTOCLASS_ENV: dict[str, str] = {}  # --env KEY=VALUE: extra environment for photoclass's runs


def photoclass_train(data: Path, out: Path, cache: Path, args: list[str]) -> tuple[dict, object]:
    """`photoclass train DATA --out OUT ARGS` in a subprocess; (bundle metadata, Run)."""
    cmd = [*PHOTOCLASS, "train", str(data), "--out", str(out), "--overwrite", *args]
    extra = " ".join(f"{k}={v}" for k, v in PHOTOCLASS_ENV.items())
    print("$", (extra + " " if extra else "") + shlex.join(["photoclass", *cmd[3:]]), flush=True)
    result = run(cmd, env={"PHOTOCLASS_CACHE": str(cache), "COLUMNS": "120", **PHOTOCLASS_ENV})
    return json.loads((out / "photoclass.json").read_text()), result


def keras_train(tf_python: str, data: Path, epochs: int, out: Path) -> tuple[dict, object]:
    cmd = [tf_python, str(ROOT / "bench" / "keras_reference.py"), str(data / "train"), str(data / "val")]
    cmd += ["--epochs", str(epochs), "--json", str(out)]
    print("$", shlex.join(cmd), flush=True)
    result = run(cmd)
    return json.loads(out.read_text()), result


def find_tf_python(given: str | None) -> str | None:
    """The interpreter with TensorFlow: `--tf-python`, else $TF_PYTHON (no default path: the
    TensorFlow venv lives wherever the user made it)."""
    path = given or os.environ.get("TF_PYTHON")
    if path and Path(path).exists():
        return path
    if path:
        print(f"no interpreter at {path}: the Keras reference is left out")
    else:
        print("no TensorFlow interpreter given (--tf-python or TF_PYTHON): the Keras reference is left out")
    return None


def epoch_speed(args, tmp: Path, tf_python: str | None) -> dict:
    banner(f"1. seed-cnn epoch time, {args.photos} photos, {args.epochs} epochs: photoclass vs Keras")
    data = stratified_subset(DATA, args.photos, tmp / "subset")
    runs: dict[str, dict[str, list]] = {}  # pipeline -> epochs, wall, rss, acc
    precisions = list(dict.fromkeys(args.precisions.split(",")))
    resolved: dict[str, str] = {}
    n_train = n_val = 0
    for rep in range(args.repeats):
        for precision in precisions:
            if precision != "auto" and resolved.get("auto") == precision:
                continue  # "auto" already ran in this arithmetic
            meta, pc = photoclass_train(
                data,
                tmp / f"seed-{precision}-{rep}",
                tmp / f"cache-epochs-{precision}-{rep}",
                ["--model", "seed-cnn", "--epochs", str(args.epochs), "--patience", str(args.epochs)]
                + ["--precision", precision],
            )
            resolved[precision] = meta["precision"]
            name = f"photoclass seed-cnn, precision {precision}" + (
                f" ({meta['precision']})" if precision == "auto" else ""
            )
            epochs = [h for h in meta["history"] if h["phase"] == "train"]
            _add(runs, name, [h["seconds"] for h in epochs], pc, [h["val_acc"] for h in epochs])
            n_train, n_val = meta["data"]["train"], meta["data"]["val"]
        if tf_python:
            keras, kr = keras_train(tf_python, data, args.epochs, tmp / f"keras-{rep}.json")
            epochs = keras["epochs"]
            _add(
                runs,
                "Keras reference",
                [e["seconds"] for e in epochs],
                kr,
                [e["val_accuracy"] for e in epochs],
            )
            runs["Keras reference"]["versions"] = [keras["versions"]]
            if (keras["train_photos"], keras["val_photos"]) != (n_train, n_val):
                print(
                    f"warning: Keras saw {keras['train_photos']}+{keras['val_photos']} photos, photoclass {n_train}+{n_val}"
                )

    headers = [
        "pipeline",
        "s/epoch (median)",
        "epochs",
        "photos/s",
        "wall s",
        "CPU s/epoch",
        "peak RSS MB",
        "last val acc",
    ]
    rows = [
        [
            name,
            median(r["epochs"]),
            len(r["epochs"]),
            n_train / median(r["epochs"]),
            median(r["wall"]),
            median(r["cpu"]),
            max(r["rss"]),
            f"{r['acc'][-1]:.1%}",
        ]
        for name, r in runs.items()
    ]
    print()
    print(table(headers, rows, title=f"{n_train} training + {n_val} validation photos, 300 px, batch 5"))
    for name, r in runs.items():
        print(f"per-epoch seconds, {name}:", [round(s, 1) for s in r["epochs"]])
    result: dict = {"photos": n_train, "val_photos": n_val, "epochs": args.epochs, "pipelines": {}}
    for name, r in runs.items():
        result["pipelines"][name] = {
            "s_per_epoch": median(r["epochs"]),
            "cpu_s_per_epoch": median(r["cpu"]),
            "epochs": r["epochs"],
            "peak_rss_mb": max(r["rss"]),
            "val_acc": r["acc"],
        }
    keras = runs.get("Keras reference")
    if keras:
        k_epoch = median(keras["epochs"])
        result["keras_s_per_epoch"] = k_epoch
        result["keras_cpu_s_per_epoch"] = median(keras["cpu"])
        result["keras_versions"] = keras["versions"][0]
        result["ratios"] = {}
        for name, r in runs.items():
            if name == "Keras reference":
                continue
            ratio = k_epoch / median(r["epochs"])
            result["ratios"][name] = ratio
            result.setdefault("cpu_ratios", {})[name] = median(keras["cpu"]) / median(r["cpu"])
            verdict = "meets" if ratio >= TARGET_EPOCH_SPEEDUP else "MISSES"
            print(
                f"{name} vs Keras: {ratio:.2f}x faster per epoch ({verdict} the >= {TARGET_EPOCH_SPEEDUP:.0f}x target), "
                f"{result['cpu_ratios'][name]:.2f}x less CPU; "
                f"peak memory {max(r['rss']):.0f} MB vs {max(keras['rss']):.0f} MB"
            )
        versions = result["keras_versions"]
        print(f"Keras: TensorFlow {versions['tensorflow']}, Keras {versions['keras']}")
    result["limits"] = step_limits(tmp, [p for p in precisions if p in resolved], n_train, n_val, result)
    return result


def step_limits(tmp: Path, precisions: list[str], n_train: int, n_val: int, result: dict) -> dict:
    """bench/step_limit.py on the same number of photos: the least an epoch's steps take in
    each precision, so the limit of the 2x goal on this CPU, and how close each epoch comes."""
    out = tmp / "step-limit.json"
    keras = result.get("keras_s_per_epoch")
    proc = run(
        [sys.executable, str(ROOT / "bench" / "step_limit.py"), "--precisions", ",".join(precisions)]
        + ["--photos", str(n_train), "--val-photos", str(n_val), "--json", str(out)]
        + (["--keras-epoch-s", f"{keras:.3f}"] if keras else [])
    )
    print(proc.stdout[proc.stdout.index("seed-cnn, ") :].rstrip())  # its table, not its CPU header
    limits = json.loads(out.read_text())
    for precision, limit in limits.items():
        name = next(
            n for n in result["pipelines"] if n.startswith(f"photoclass seed-cnn, precision {precision}")
        )
        limit["reached"] = limit["epoch_s"] / result["pipelines"][name]["s_per_epoch"]
        line = (
            f"{name}: its epoch takes {1 / limit['reached']:.2f}x the steps alone ({limit['epoch_s']:.1f} s)"
        )
        if keras:
            limit["limit_ratio"] = keras / limit["epoch_s"]
            line += f"; the steps alone are {limit['limit_ratio']:.2f}x Keras's epoch: this CPU's limit for the 2x goal"
        print(line)
    return limits


def _add(runs: dict, name: str, seconds: list[float], proc, acc: list[float]) -> None:
    found = runs.setdefault(name, {"epochs": [], "wall": [], "cpu": [], "rss": [], "acc": []})
    found["epochs"] += seconds
    found["wall"].append(proc.wall)
    found["cpu"].append((proc.user + proc.sys) / len(seconds))  # per epoch, start-up included
    found["rss"].append(proc.max_rss_mb)
    found["acc"] = acc


def reference_seconds(epochs: dict | None, key: str = "keras_s_per_epoch") -> float | None:
    """5 Keras epochs on the full set, timed on this CPU: part 1's epoch time (wall, or CPU
    with `key="keras_cpu_s_per_epoch"`), scaled from its subset to 2,000 + 500 photos (Keras
    decodes every photo every epoch, so its epoch time grows with the photos)."""
    if not epochs or key not in epochs:
        return None
    return 5 * epochs[key] * (FULL_TRAIN + FULL_VAL) / (epochs["photos"] + epochs["val_photos"])


def time_to_accuracy(args, tmp: Path, epochs: dict | None) -> dict:
    banner("2. time to accuracy on the full set, cold cache: default recipe vs the reference recipe")
    extra = shlex.split(args.lite0_args)
    meta, lite = photoclass_train(DATA, tmp / "lite0", tmp / "cache-lite0", extra)
    lite_acc = meta["validation"]["accuracy"]
    fine_tune = sum(h["seconds"] for h in meta["history"] if h["phase"] == "train")
    probe_acc = max((h["val_acc"] for h in meta["history"] if h["phase"] == "probe"), default=float("nan"))
    print(
        f"   efficientnet-lite0: {lite.wall:.0f} s wall ({lite.user + lite.sys:.0f} CPU s), of which the "
        f"fine-tune epoch(s) {fine_tune:.0f} s; best probe val acc {probe_acc:.1%}, final {lite_acc:.1%}"
    )
    reference = reference_seconds(epochs)
    refs: list[tuple[str, float, float]] = []
    if reference is not None:
        scaled = " (scaled from part 1's subset)" if epochs["photos"] < FULL_TRAIN else ""
        refs.append((f"reference: 5 Keras epochs, this CPU{scaled}", reference, REFERENCE_ACCURACY))
    refs.append(
        (
            "reference as recorded (another machine, reference-system.md)",
            REFERENCE_MINUTES * 60,
            REFERENCE_ACCURACY,
        )
    )
    if not args.skip_seed:
        seed_meta, seed = photoclass_train(DATA, tmp / "seed", tmp / "cache-seed", ["--model", "seed-cnn"])
        refs.append(
            ("photoclass seed-cnn, 5 epochs (this run)", seed.wall, seed_meta["validation"]["accuracy"])
        )
    rows = [
        [
            "efficientnet-lite0 (default recipe)" + (f" {args.lite0_args}" if extra else ""),
            lite.wall / 60,
            f"{lite_acc:.1%}",
            "1.00",
        ]
    ]
    rows += [[name, secs / 60, f"{acc:.1%}", f"{secs / lite.wall:.2f}"] for name, secs, acc in refs]
    print()
    print(
        table(
            ["recipe", "minutes", "val acc", "x lite0 time"],
            rows,
            title="whole training command, decoding included",
        )
    )
    result = {
        "wall_s": lite.wall,
        "cpu_s": lite.user + lite.sys,
        "val_acc": lite_acc,
        "probe_val_acc": probe_acc,
        "fine_tune_s": fine_tune,
        "model": str(tmp / "lite0"),
        "reference_s": reference,
    }
    if reference is not None:
        speedup = reference / lite.wall
        ok = speedup >= TARGET_TTA_SPEEDUP and lite_acc >= TARGET_ACCURACY
        result["speedup"] = speedup
        # The same in CPU seconds, which load from other processes changes far less than wall time.
        result["cpu_speedup"] = reference_seconds(epochs, "keras_cpu_s_per_epoch") / (lite.user + lite.sys)
        print(
            f"time to {lite_acc:.1%}: {speedup:.1f}x sooner than 5 Keras epochs on this CPU "
            f"({'meets' if ok else 'MISSES'} the >= {TARGET_TTA_SPEEDUP:.0f}x sooner, >= {TARGET_ACCURACY:.1%} target); "
            f"{result['cpu_speedup']:.1f}x less CPU"
        )
    return result


def small_cnn(args, tmp: Path, reference: float | None) -> dict:
    options = shlex.split(args.small_cnn_args)
    banner(f"3. small-cnn on the full set, cold cache, {shlex.join(options) or 'its whole recipe'}")
    meta, proc = photoclass_train(
        DATA, tmp / "small-cnn", tmp / "cache-small", ["--model", "small-cnn", *options]
    )
    history = [h for h in meta["history"] if h["phase"] == "train"]
    seconds = [h["seconds"] for h in history]
    overhead = proc.wall - sum(seconds)  # start-up, decoding, writing the bundle
    reached = next((i for i, h in enumerate(history) if h["val_acc"] >= SMALL_CNN_ACCURACY), None)
    result = {
        "wall_s": proc.wall,
        "overhead_s": overhead,
        "s_per_epoch": median(seconds),
        "epochs_run": len(history),
        "val_acc": [h["val_acc"] for h in history],
        "precision": meta["precision"],
        "options": shlex.join(options),
        "budget_s": reference * SMALL_CNN_SHARE if reference else None,
    }
    print(
        f"   small-cnn ({meta['precision']}): {median(seconds):.1f} s per epoch (median of {len(seconds)}), "
        f"{overhead:.0f} s start-up, decoding and bundle; val acc by epoch "
        + " ".join(f"{h['val_acc']:.1%}" for h in history)
    )
    if reached is not None:
        result["time_to_target_s"] = overhead + sum(seconds[: reached + 1])
        result["epoch_reached"] = reached + 1
        print(
            f"   reached {SMALL_CNN_ACCURACY:.0%} at epoch {reached + 1}, {result['time_to_target_s']:.0f} s after the start"
        )
    if reference:
        budget = result["budget_s"]
        affordable = int((budget - overhead) // median(seconds))
        result["epochs_in_budget"] = affordable
        line = f"   budget: a third of the reference recipe's {reference / 60:.1f} min = {budget:.0f} s, {affordable} epochs at this speed"
        if "time_to_target_s" in result:
            ok = result["time_to_target_s"] <= budget
            result["ratio"] = reference / result["time_to_target_s"]
            line += f"; {result['ratio']:.1f}x sooner than the reference ({'meets' if ok else 'MISSES'} the <= 1/3 target)"
        print(line)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400, help="training photos for the epoch comparison")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per pipeline for the epoch comparison")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each pipeline (epochs pooled)")
    parser.add_argument(
        "--precisions", default="auto,fp32", help="seed-cnn precisions to time (comma-separated)"
    )
    parser.add_argument("--quick", action="store_true", help="100 photos, 2 epochs, --skip-seed")
    parser.add_argument(
        "--tf-python", help="interpreter with TensorFlow for the Keras reference [$TF_PYTHON]"
    )
    parser.add_argument("--skip-keras", action="store_true", help="leave out the Keras pipeline")
    parser.add_argument(
        "--seed-recipe",
        dest="skip_seed",
        action="store_false",
        help="also run photoclass's own 5-epoch seed-cnn recipe on the full set (~20-30 min here)",
    )
    parser.add_argument("--skip-seed", action="store_true", help="leave it out (the default)")
    parser.set_defaults(skip_seed=True)
    parser.add_argument("--skip-epochs", action="store_true", help="leave out part 1 (epoch speed)")
    parser.add_argument("--skip-accuracy", action="store_true", help="leave out part 2 (time to accuracy)")
    parser.add_argument("--small-cnn", action="store_true", help="part 3: small-cnn's time to 95%%")
    parser.add_argument(
        "--small-cnn-args",
        default="",
        help='part 3 with these `photoclass train` options, e.g. "--epochs 17"',
    )
    parser.add_argument(
        "--lite0-args", default="", help='extra `photoclass train` options, e.g. "--epochs 0"'
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for photoclass's runs, e.g. OMP_WAIT_POLICY=PASSIVE (repeatable)",
    )
    parser.add_argument("--work", type=Path, help="keep the models here [a temporary folder]")
    parser.add_argument("--json", type=Path, help="write the figures here (for bench/all.py)")
    args = parser.parse_args()
    PHOTOCLASS_ENV.update(item.split("=", 1) for item in args.env)
    if args.quick:
        args.photos, args.epochs, args.skip_seed = 100, 2, True
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(cpu_summary())
    print(f"data: {DATA}; {machine()}")
    tf_python = None if args.skip_keras or args.skip_epochs else find_tf_python(args.tf_python)
    found: dict = {}
    with tempfile.TemporaryDirectory(prefix="photoclass-bench-") as name:
        tmp = args.work or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        epochs = None if args.skip_epochs else epoch_speed(args, tmp, tf_python)
        found["epochs"] = epochs
        if not args.skip_accuracy:
            found["accuracy"] = time_to_accuracy(args, tmp, epochs)
        if args.small_cnn:
            found["small_cnn"] = small_cnn(args, tmp, reference_seconds(epochs))
    print(f"\nafter: {machine()}")
    if args.json:
        args.json.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
