"""The Python API: each function is one stage, and the CLI is a thin layer over these.

import photoclass
run = photoclass.train("data/cats-owls", "models/co", model="small-cnn", epochs=20)
ev = photoclass.evaluate("models/co", "data/cats-owls/val")
print(ev.accuracy, ev.metrics["accuracy_ci95"])
for p in photoclass.predict("models/co", ["photos/"], top_k=2):
    print(p.path, p.label, p.probability)
photoclass.serve("models/co").run()   # http://127.0.0.1:8000 until Ctrl-C
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoclass import runtime
from photoclass.bundle import Bundle, load_bundle
from photoclass.config import ServeConfig, TrainConfig
from photoclass.evaluation.evaluate import Evaluation, evaluate_split
from photoclass.prediction.predict import Prediction, predict_paths
from photoclass.progress import Progress, as_progress

if TYPE_CHECKING:
    from photoclass.exporting import ExportResult
    from photoclass.serving import ModelServer
    from photoclass.training.loop import TrainResult

runtime.tune_allocator()


def load_model(model: str | Path | Bundle) -> Bundle:
    """Load a bundle folder written by `train` (no pickle: safetensors + JSON)."""
    return model if isinstance(model, Bundle) else load_bundle(Path(model))


def train(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | Progress = True,
    **options: Any,
) -> TrainResult:
    """Train on `data/train/<class>/` and write the model bundle to `out`.

    `options` override fields of `config` (e.g. `model="small-cnn", epochs=20`)."""
    # Training needs torchvision (augmentation); prediction does not, and starts faster without.
    from photoclass.training.loop import train as _train

    config = dataclasses.replace(config or TrainConfig(), **options)
    return _train(
        Path(data), Path(out), config, resume=resume, overwrite=overwrite, progress=as_progress(progress)
    )


def evaluate(
    model: str | Path | Bundle,
    split: str | Path,
    *,
    metrics_out: str | Path | None = None,
    report_out: str | Path | None = None,
    progress: bool | Progress = True,
) -> Evaluation:
    """Score `model` on a labelled folder `split/<class>/`; optionally write `metrics.json`
    and the HTML report (see `report`)."""
    bundle = load_model(model)
    evaluation = evaluate_split(bundle, Path(split), progress=as_progress(progress))
    if metrics_out is not None:
        evaluation.save(Path(metrics_out))
    if report_out is not None:
        from photoclass.reporting import write_report

        # The folder above the split is the dataset; when `collect` made it, the report says
        # what it holds.
        write_report(bundle, evaluation, Path(report_out), data_dir=Path(split).absolute().parent)
    return evaluation


def report(
    model: str | Path | Bundle, split: str | Path, out: str | Path, *, progress: bool | Progress = True
) -> Path:
    """Evaluate `model` on `split/<class>/` and write one self-contained HTML page to `out`:
    training curves, confusion matrix, per-class scores, ROC (two classes), the most confident
    mistakes, Grad-CAM heat maps, unreadable files, and the data section for collected data.

    photoclass.report("models/cats-owls", "data/cats-owls/test", "report.html")
    """
    evaluate(model, split, report_out=out, progress=progress)
    return Path(out)


def export(
    model: str | Path | Bundle,
    out: str | Path,
    check: Sequence[str | Path] = (),
    *,
    progress: bool | Progress = False,
) -> ExportResult:
    """Write `model` as ONNX to `out`, checked against PyTorch on the photos in `check`
    (files or folders); see `photoclass.exporting`. Needs `pip install 'photoclass[export]'`."""
    from photoclass.exporting import export_onnx

    return export_onnx(load_model(model), Path(out), [Path(p) for p in check], progress=as_progress(progress))


def predict(
    model: str | Path | Bundle,
    paths: Sequence[str | Path],
    *,
    top_k: int = 1,
    progress: bool | Progress = False,
) -> list[Prediction]:
    """Label every photo under `paths` (files or folders); unreadable photos get an `error`."""
    return predict_paths(
        load_model(model), [Path(p) for p in paths], top_k=top_k, progress=as_progress(progress)
    )


def serve(
    model: str | Path | Bundle,
    config: ServeConfig | None = None,
    *,
    api_key: str | None = None,
    **options: Any,
) -> ModelServer:
    """A web page and JSON API that predict photos with `model`, bound to its port now and
    serving once run. `options` override fields of `config` (`host="127.0.0.1"`, `port=8000`,
    `workers`, `max_batch`, `max_wait_ms`, `max_queue`, `cors_origins`; see `ServeConfig`).

    server = photoclass.serve("models/co")
    server.run()                       # until Ctrl-C or SIGTERM, then stops gracefully

    with photoclass.serve("models/co", port=0) as server:   # in a background thread
        httpx.post(f"{server.url}/api/predict", content=open("cat.jpg", "rb").read()).json()

    Concurrent requests are batched: one forward pass takes what arrived within
    `max_wait_ms` of the first, up to `max_batch` photos. With `api_key`, `/api/` requests
    must send `Authorization: Bearer <api_key>`. With `workers` > 1 each worker process
    loads its own copy of `model` (a folder, then), and only `run()` serves them."""
    from photoclass.serving import ModelServer

    config = dataclasses.replace(config or ServeConfig(), **options)
    config.validate()
    bundle = load_model(model)  # checked here, before any worker process starts
    served = Path(model) if config.workers > 1 and not isinstance(model, Bundle) else bundle
    return ModelServer(served, config, api_key=api_key)
