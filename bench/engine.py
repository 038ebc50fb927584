"""Inference engines side by side: steady-state photos/s of each model's forward pass.

    python bench/engine.py                       # the three models, batch 1 and 32 (~3 min)
    python bench/engine.py --quick               # efficientnet-lite0 only, shorter runs
    python bench/engine.py --model MODEL         # also int8 accuracy on val/ for a trained bundle
    python bench/engine.py --compile --int8      # also torch.compile and int8 onnxruntime

For each model (random head on ImageNet weights for efficientnet-lite0, random weights for the
others: the speed does not depend on the values), on uint8 pixels as prediction feeds them
(preprocessing inside the timed call), in one process with the allocator tuned as
`import photoclass` tunes it, round-robin so load hits each alike:
- torch fp32: `photoclass.prediction.engine.TorchRunner` (PyTorch eager, channels-last);
- torch bf16: the same under bf16 autocast, where the CPU has native bf16;
- onnx: `runner_for(..., engine="onnx")`, onnxruntime on the exported graph (what "auto" picks
  on a CPU in float32); the first call's seconds include exporting the graph;
- with `--compile`: torch.compile (inductor) of the same module, first call = compile time;
- with `--int8`: onnxruntime on the graph quantised to int8, dynamically (weights only) and
  statically (QDQ, activations calibrated on 32 real photos); they change the probabilities,
  so their largest difference from fp32 is shown, and with `--model` the val accuracy.
Reported: median photos/s, CPU ms per photo, the first call's seconds, the largest probability
difference from torch fp32 on real photos.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: before torch loads

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import DATA, banner, cpu_summary, machine, table  # noqa: E402

from photoclass.data.cache import decode_all  # noqa: E402
from photoclass.data.preprocess import Normalize  # noqa: E402
from photoclass.models import create_model, get_model_entry  # noqa: E402
from photoclass.prediction.engine import OnnxRunner, TorchRunner, export_graph, open_session, runner_for  # noqa: E402
from photoclass.prediction.inference import probabilities  # noqa: E402
from photoclass.runtime import Compute, native_bf16, tune_allocator  # noqa: E402

tune_allocator()  # as `import photoclass` does: without it PyTorch pays page faults, onnxruntime not

SIZES = {"efficientnet-lite0": 224, "small-cnn": 128, "seed-cnn": 300}


def real_pixels(size: int, count: int, split: str = "val") -> np.ndarray:
    photos = sorted((DATA / split).rglob("*.jpg"))
    step = max(1, len(photos) // count)
    return np.ascontiguousarray(decode_all(photos[::step][:count], size, use_cache=False).images)


def int8_runners(module, normalize, size: int, tmp: Path) -> dict:
    """onnxruntime on int8 graphs: dynamic (weights) and static QDQ (calibrated on real photos)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from photoclass.prediction.engine import Pixels

    fp32 = tmp / f"{size}-fp32.onnx"
    fp32.write_bytes(export_graph(Pixels(module, normalize).eval(), size))
    prepared = tmp / f"{size}-prep.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    out = {}
    dynamic = tmp / f"{size}-dynamic.onnx"
    quantize_dynamic(str(prepared), str(dynamic), weight_type=QuantType.QInt8)
    out["onnx int8 dynamic"] = dynamic
    calibration = real_pixels(size, 32, "train")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixels": calibration[i : i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    static = tmp / f"{size}-static.onnx"
    quantize_static(str(prepared), str(static), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    out["onnx int8 static"] = static
    return {name: OnnxRunner(open_session(path), path) for name, path in out.items()}


def bench_model(name: str, args, tmp: Path, bundle=None) -> list[dict]:
    size = SIZES[name]
    entry = get_model_entry(name)
    torch.manual_seed(0)
    if bundle is not None:
        model, normalize = bundle.model.cpu(), bundle.normalize
    else:
        model = create_model(name, 2, size, pretrained=entry.cfg.pretrained)
        normalize = Normalize(entry.cfg.mean, entry.cfg.std)
    model = model.eval().to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    runners, first = {}, {}

    def add(label: str, make) -> None:
        tick = time.perf_counter()
        runner = make()
        runner(np.zeros((1, size, size, 3), np.uint8))  # first call: export, compile, kernel set-up
        first[label] = time.perf_counter() - tick
        runners[label] = runner

    add("torch fp32", lambda: TorchRunner(model, normalize, Compute(cpu, "fp32")))
    if native_bf16():
        add("torch bf16", lambda: TorchRunner(model, normalize, Compute(cpu, "bf16")))
    add("onnx", lambda: runner_for(model, normalize, Compute(cpu, "fp32"), "onnx", size=size))
    if args.compile:
        add("torch.compile fp32", lambda: TorchRunner(torch.compile(model), normalize, Compute(cpu, "fp32")))
    if args.int8:
        tick = time.perf_counter()
        for label, runner in int8_runners(model, normalize, size, tmp).items():
            runner(np.zeros((1, size, size, 3), np.uint8))
            runners[label], first[label] = runner, time.perf_counter() - tick

    check = real_pixels(size, 16)
    want = probabilities(runners["torch fp32"](check))
    rows = []
    for batch in args.batches:
        pixels = real_pixels(size, batch) if batch <= 64 else np.resize(check, (batch, size, size, 3))
        pixels = np.resize(pixels, (batch, size, size, 3))
        walls: dict[str, list[float]] = {k: [] for k in runners}
        cpus: dict[str, list[float]] = {k: [] for k in runners}
        deadline = time.perf_counter() + args.seconds * len(runners)
        rounds = 0
        while rounds < 2 or (time.perf_counter() < deadline and rounds < 50):
            for label, runner in runners.items():
                c, t = time.process_time(), time.perf_counter()
                runner(pixels)
                walls[label].append(time.perf_counter() - t)
                cpus[label].append(time.process_time() - c)
            rounds += 1
        for label, runner in runners.items():
            wall = statistics.median(walls[label])
            diff = float(np.abs(probabilities(runner(check)) - want).max())
            rows.append(
                {
                    "model": name,
                    "engine": label,
                    "batch": batch,
                    "photos_per_s": batch / wall,
                    "cpu_ms_per_photo": statistics.median(cpus[label]) / batch * 1000,
                    "first_call_s": first[label],
                    "max_prob_diff": diff,
                    "runs": len(walls[label]),
                }
            )
    if bundle is not None and args.int8:
        photos = sorted((DATA / "val").rglob("*.jpg"))
        val = decode_all(photos, size, use_cache=True)
        labels = np.asarray([bundle.classes.index(photos[i].parent.name) for i in val.ok])
        for label in ("onnx", "onnx int8 dynamic", "onnx int8 static"):
            run = runners[label]
            probs = np.concatenate(
                [probabilities(run(val.images[i : i + 32])) for i in range(0, len(labels), 32)]
            )
            for row in rows:
                if row["engine"] == label:
                    row["val_accuracy"] = float((probs.argmax(1) == labels).mean())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SIZES), help="comma-separated model names")
    parser.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per engine and batch")
    parser.add_argument("--quick", action="store_true", help="efficientnet-lite0 only, 1 s per measurement")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes to compile)")
    parser.add_argument("--int8", action="store_true", help="also int8 onnxruntime (dynamic and static)")
    parser.add_argument("--model", type=Path, help="a trained efficientnet-lite0 bundle: int8 val accuracy")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.quick:
        args.models, args.seconds = "efficientnet-lite0", 1.0
    args.batches = [int(b) for b in args.batches.split(",")]
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(cpu_summary())
    print(machine())
    bundle = None
    if args.model:
        import photoclass

        bundle = photoclass.load_model(args.model, device="cpu", engine="torch")
    rows = []
    with tempfile.TemporaryDirectory(prefix="photoclass-bench-") as name:
        for model in args.models.split(","):
            banner(f"{model}: steady-state forward, uint8 pixels in, {torch.get_num_threads()} threads")
            use = bundle if bundle is not None and bundle.meta["architecture"] == model else None
            found = bench_model(model, args, Path(name), use)
            rows += found
            base = {r["batch"]: r["photos_per_s"] for r in found if r["engine"] == "torch fp32"}
            print(
                table(
                    [
                        "engine",
                        "batch",
                        "photos/s",
                        "x torch fp32",
                        "CPU ms/photo",
                        "first call s",
                        "max |dp|",
                    ]
                    + (["val acc"] if any("val_accuracy" in r for r in found) else []),
                    [
                        [
                            r["engine"],
                            r["batch"],
                            r["photos_per_s"],
                            f"{r['photos_per_s'] / base[r['batch']]:.2f}",
                            r["cpu_ms_per_photo"],
                            r["first_call_s"],
                            f"{r['max_prob_diff']:.1e}",
                        ]
                        + ([f"{r['val_accuracy']:.1%}" if "val_accuracy" in r else ""] if use else [])
                        for r in found
                    ],
                ),
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(f"\nafter: {machine()}")


if __name__ == "__main__":
    main()
