"""Every benchmark in one command: one table of the speed goals, with the CPU it ran on.

    python bench/all.py --tf-python /path/to/tf-venv/bin/python         # ~45 min on 2 cores
    python bench/all.py --quick --tf-python ...                        # ~10 min
    python bench/all.py --quick --emulate-avx2 --tf-python ...         # as on an AVX2-only CPU
    python bench/all.py --json results.json                            # also as JSON

Runs, each in its own subprocesses, with a time limit (`--limit` minutes each):
1. bench/engine.py: efficientnet-lite0's forward pass, PyTorch vs onnxruntime, batch 1 and 32;
2. bench/train.py: seed-cnn epochs vs the Keras reference (the recipe's precision and fp32),
   then the default `photoclass train` on the full set with a cold cache against 5 Keras
   epochs timed here, then small-cnn trained fast (`SMALL_CNN_FAST`: its time to 95% val);
3. bench/predict.py on the model part 2 trained: cold single-photo latency, batch
   photos/s over val/ (whole command, default engine and `--engine torch`); bench/serve.py
   measures serving.
Then prints the goals table (measured, target, verdict) under the CPU's model and flags, and
writes everything as JSON (`--json`, default `bench-results.json` in the current folder), so
runs on two machines can be compared.

`--emulate-avx2` runs everything with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
(PyTorch's and TensorFlow's kernels capped at AVX2, so auto precision is fp32): an
approximation of an AVX2-only CPU whose figures are labelled "AVX2 emulated". onnxruntime
ignores these variables (its kernels still use AVX-512 where the CPU has it), so its figures
are not emulated. The Keras reference needs TensorFlow in a separate venv (`--tf-python` or
$TF_PYTHON; see bench/README.md); without it the ratios to Keras are left out. `bench/collect.py`
is not part of this run (its goal is measured on its own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

from _common import ROOT, cpu_info, cpu_summary, machine, table

BENCH = ROOT / "bench"
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# small-cnn's goal (95% val within a third of the reference recipe's time) is measured with
# these options: 80 px crops of the 128 px photos, 17 epochs. Its default recipe (40 epochs on
# 128 px crops, 12 min here) is kept for photos unlike the training set (README, "Beyond val/").
SMALL_CNN_FAST = "--epochs 17 --train-size-ratio 0.625"


def step(name: str, cmd: list[str], out: Path, limit_min: float, log: Path) -> dict | None:
    """Run one benchmark script (its output to the terminal and `log`), bounded by
    `limit_min`; its JSON figures, or None when it failed or ran out of time."""
    print(f"\n######## {name}\n$ {shlex.join(cmd)}", flush=True)
    with log.open("a") as sink:
        sink.write(f"\n######## {name}\n$ {shlex.join(cmd)}\n")
        # Its own process group, so the time limit also ends the processes it started.
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        timer = threading.Timer(limit_min * 60, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            for line in proc.stdout:
                print(line, end="", flush=True)
                sink.write(line)
            proc.wait()
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            timer.cancel()
    if proc.returncode == -signal.SIGKILL:
        print(f"!! {name}: stopped after {limit_min:g} min (--limit)")
        return None
    if proc.returncode != 0 or not out.exists():
        print(f"!! {name} failed (exit {proc.returncode}); see above")
        return None
    return json.loads(out.read_text())


def goals(found: dict, kind: str) -> list[dict]:
    """The issue's goals as rows: what was measured, the target, the verdict."""
    rows = []

    def add(goal: str, value: float | None, shown: str, target: str, ok: bool | None, note: str = "") -> None:
        verdict = "-" if ok is None else ("meets" if ok else "MISSES")
        rows.append(
            {
                "goal": goal,
                "value": value,
                "measured": shown,
                "target": target,
                "verdict": verdict,
                "note": note,
                "cpu": kind,
            }
        )

    train = found.get("train") or {}
    epochs, accuracy, small = (
        train.get("epochs") or {},
        train.get("accuracy") or {},
        train.get("small_cnn") or {},
    )
    if accuracy:
        speedup = accuracy.get("speedup")
        note = (
            f"{accuracy['wall_s']:.0f} s, {accuracy['val_acc']:.1%} val; 5 Keras epochs here "
            f"{accuracy['reference_s'] / 60:.1f} min; {accuracy['cpu_speedup']:.1f}x less CPU"
            if speedup
            else f"{accuracy['wall_s']:.0f} s, {accuracy['val_acc']:.1%} val; no Keras timing"
        )
        ok = None if speedup is None else speedup >= 10 and accuracy["val_acc"] >= 0.995
        add(
            "default train to >= 99.5% val, vs 5 Keras epochs",
            speedup,
            f"{speedup:.1f}x sooner" if speedup else "-",
            ">= 10x",
            ok,
            note,
        )
    for name, ratio in (epochs.get("ratios") or {}).items():
        pipeline = epochs["pipelines"][name]
        note = (
            f"{pipeline['s_per_epoch']:.1f} vs {epochs['keras_s_per_epoch']:.1f} s per "
            f"{epochs['photos']}+{epochs['val_photos']}-photo epoch; {epochs['cpu_ratios'][name]:.2f}x less CPU"
        )
        limit = (epochs.get("limits") or {}).get(name.split("precision ")[1].split()[0], {})
        if "limit_ratio" in limit:  # bench/step_limit.py: the steps alone
            note += (
                f"; this CPU's limit (the batch-5 steps alone) {limit['limit_ratio']:.2f}x, "
                f"{limit['reached']:.0%} of it reached"
            )
        add(
            f"seed-cnn epoch vs Keras, {name.split(', ', 1)[1]}",
            ratio,
            f"{ratio:.2f}x",
            ">= 2x",
            ratio >= 2,
            note,
        )
    if small:
        ratio, budget = small.get("ratio"), small.get("budget_s")
        if "epoch_reached" in small:
            note = f"epoch {small['epoch_reached']}, {small['time_to_target_s']:.0f} s"
        else:
            note = f"not in its {small['epochs_run']} epochs (best {max(small['val_acc']):.1%})"
        if budget:
            note += f", budget {budget:.0f} s"
        add(
            f"small-cnn {small['options']} to 95% val vs reference recipe",
            ratio,
            f"{ratio:.1f}x sooner" if ratio else "-",
            ">= 3x",
            bool(ratio and ratio >= 3) if budget else None,
            f"{note}; {small['s_per_epoch']:.1f} s/epoch ({small['precision']})",
        )
    predict = found.get("predict") or {}
    if predict:
        rate = predict["cli_photos_per_s"]
        add(
            "photoclass predict over val/ (lite0, whole command)",
            rate,
            f"{rate:.0f} photos/s",
            ">= 50",
            rate >= 50,
            f"--engine torch: {predict['cli_torch_photos_per_s']:.0f} photos/s",
        )
        add(
            "cold single-photo predict",
            predict["cold_s"],
            f"{predict['cold_s']:.2f} s",
            "<= 4 s",
            predict["cold_s"] <= 4,
        )
    for row in found.get("engine") or []:
        if row["engine"] == "onnx":
            base = next(
                r for r in found["engine"] if r["engine"] == "torch fp32" and r["batch"] == row["batch"]
            )
            ratio = row["photos_per_s"] / base["photos_per_s"]
            add(
                f"lite0 forward, batch {row['batch']}: onnxruntime vs PyTorch fp32",
                ratio,
                f"{ratio:.2f}x",
                "(info)",
                None,
                f"{row['photos_per_s']:.0f} vs {base['photos_per_s']:.0f} photos/s",
            )
    return rows


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs of each benchmark (~10 min in all)"
    )
    parser.add_argument(
        "--emulate-avx2", action="store_true", help="cap PyTorch's and TensorFlow's kernels at AVX2"
    )
    parser.add_argument(
        "--tf-python", help="interpreter with TensorFlow for the Keras reference [$TF_PYTHON]"
    )
    parser.add_argument(
        "--limit", type=float, default=60.0, help="minutes each benchmark may run (default 60)"
    )
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results.json"), help="where to write the results"
    )
    parser.add_argument("--skip", default="", help="comma-separated: engine, train, predict")
    args = parser.parse_args()
    if args.emulate_avx2:
        os.environ.update(AVX2)  # inherited by every benchmark and the processes they start
    skip = set(filter(None, args.skip.split(",")))
    python = sys.executable
    quick = ["--quick"] if args.quick else []
    tf = ["--tf-python", args.tf_python] if args.tf_python else []
    started, load_before = time.time(), os.getloadavg()
    print("$", shlex.join([Path(python).name, *sys.argv]))
    print(cpu_summary())
    print(machine())
    found: dict = {}
    with tempfile.TemporaryDirectory(prefix="photoclass-all-") as name:
        tmp = Path(name)
        log = tmp / "log.txt"
        if "engine" not in skip:
            cmd = [
                python,
                str(BENCH / "engine.py"),
                "--models",
                "efficientnet-lite0",
                "--json",
                str(tmp / "engine.json"),
            ]
            found["engine"] = step(
                "engine",
                cmd + (["--seconds", "1"] if args.quick else []),
                tmp / "engine.json",
                args.limit,
                log,
            )
        if "train" not in skip:
            cmd = [
                python,
                str(BENCH / "train.py"),
                *quick,
                *tf,
                "--small-cnn",
                "--small-cnn-args",
                SMALL_CNN_FAST,
                "--work",
                str(tmp / "train"),
                "--json",
                str(tmp / "train.json"),
            ]
            found["train"] = step("train", cmd, tmp / "train.json", args.limit, log)
        if "predict" not in skip:
            model = Path((found.get("train") or {}).get("accuracy", {}).get("model", tmp / "none"))
            cmd = [python, str(BENCH / "predict.py"), *quick, "--json", str(tmp / "predict.json")]
            cmd += ["--model", str(model)] if model.is_dir() else []
            found["predict"] = step("predict", cmd, tmp / "predict.json", args.limit, log)
    info = cpu_info()
    kind = info["kind"]
    rows = goals(found, kind)
    print(f"\n\n{'=' * 100}\n{cpu_summary()}")
    print(
        f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; {(time.time() - started) / 60:.0f} min; {'quick' if args.quick else 'full'} run"
    )
    print(
        table(
            ["goal", "measured", "target", "verdict", "detail"],
            [[r["goal"], r["measured"], r["target"], r["verdict"], r["note"]] for r in rows],
        )
    )
    missing = [name for name in ("engine", "train", "predict") if name not in skip and not found.get(name)]
    if missing:
        print(f"not measured (failed or stopped): {', '.join(missing)}")
    result = {
        "cpu": info,
        "python": platform.python_version(),
        "versions": {
            name: _version(name) for name in ("photoclass", "torch", "onnxruntime", "numpy", "pillow")
        },
        "quick": args.quick,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "minutes": (time.time() - started) / 60,
        "goals": rows,
        "benchmarks": found,
    }
    args.json.write_text(json.dumps(result, indent=2))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
