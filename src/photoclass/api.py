"""The Python API: each function is one stage, and the CLI is a thin layer over these.

import photoclass
run = photoclass.train("data/cats-owls", "models/co", model="small-cnn", epochs=20)
ev = photoclass.evaluate("models/co", "data/cats-owls/val")
print(ev.accuracy, ev.metrics["accuracy_ci95"])
for p in photoclass.predict("models/co", ["photos/"], top_k=2):
    print(p.path, p.label, p.probability)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoclass import runtime
from photoclass.bundle import Bundle, load_bundle
from photoclass.config import CollectConfig, TrainConfig
from photoclass.evaluation.evaluate import Evaluation, evaluate_split
from photoclass.prediction.predict import Prediction, predict_paths
from photoclass.progress import NO_PROGRESS, Progress, as_progress

if TYPE_CHECKING:
    from photoclass.collecting import CollectSummary
    from photoclass.exporting import ExportResult
    from photoclass.training.loop import TrainResult

runtime.tune_allocator()


def load_model(model: str | Path | Bundle, *, device: str = "auto") -> Bundle:
    """Load a bundle folder written by `train` (no pickle: safetensors + JSON) onto `device`
    ("auto": a GPU if there is one, else the CPU; or "cpu", "cuda", "cuda:1", "mps")."""
    return model if isinstance(model, Bundle) else load_bundle(Path(model), device)


def collect(
    classes: Sequence[str],
    out: str | Path,
    config: CollectConfig | None = None,
    *,
    api_key: str | None = None,
    progress: bool | Progress = True,
    **options: Any,
) -> CollectSummary:
    """Search Flickr for each of `classes` and download, check, de-duplicate and split the photos
    into `out/{train,val,test}/<class>/` (+ `manifest.sqlite`, `ATTRIBUTION.csv`). Rerunning
    the same call resumes. `api_key` defaults to $FLICKR_API_KEY or the user config file;
    `options` override fields of `config` (e.g. `per_class=200, license="CC BY 2.0"`).

    photoclass.collect(["cat", "owl"], "data/cats-owls", per_class=200)
    """
    from photoclass.collecting import collect as _collect
    from photoclass.collecting.flickr import find_api_key

    config = dataclasses.replace(config or CollectConfig(), classes=tuple(classes), **options)
    key = api_key if api_key is not None else find_api_key()
    return _collect(config, Path(out), key, progress=as_progress(progress) is not NO_PROGRESS)


def train(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    follow_symlinks: bool = False,
    progress: bool | Progress = True,
    **options: Any,
) -> TrainResult:
    """Train on `data/train/<class>/` and write the model bundle to `out`.

    `options` override fields of `config` (e.g. `model="small-cnn", epochs=20`). Symbolic
    links leading outside `data` are skipped unless `follow_symlinks=True`."""
    # Training needs torchvision (augmentation); prediction does not, and starts faster without.
    from photoclass.training.loop import train as _train

    config = dataclasses.replace(config or TrainConfig(), **options)
    return _train(
        Path(data),
        Path(out),
        config,
        resume=resume,
        overwrite=overwrite,
        follow_symlinks=follow_symlinks,
        progress=as_progress(progress),
    )


def evaluate(
    model: str | Path | Bundle,
    split: str | Path,
    *,
    metrics_out: str | Path | None = None,
    report_out: str | Path | None = None,
    reject_unknown: bool = False,
    device: str = "auto",
    follow_symlinks: bool = False,
    progress: bool | Progress = True,
) -> Evaluation:
    """Score `model` on a labelled folder `split/<class>/` on `device`; optionally write
    `metrics.json` and the HTML report (see `report`). `metrics["unknown"]` counts the photos
    that look like none of the classes; with `reject_unknown=True` they are left out of the
    other numbers. Symbolic links leading outside `split` are skipped unless
    `follow_symlinks=True`."""
    bundle = load_model(model, device=device)
    evaluation = evaluate_split(
        bundle,
        Path(split),
        reject_unknown=reject_unknown,
        follow_symlinks=follow_symlinks,
        progress=as_progress(progress),
    )
    if metrics_out is not None:
        evaluation.save(Path(metrics_out))
    if report_out is not None:
        from photoclass.reporting import write_report

        # The folder above the split is the dataset; when `collect` made it, the report says
        # what it holds.
        write_report(bundle, evaluation, Path(report_out), data_dir=Path(split).absolute().parent)
    return evaluation


def report(
    model: str | Path | Bundle,
    split: str | Path,
    out: str | Path,
    *,
    device: str = "auto",
    progress: bool | Progress = True,
) -> Path:
    """Evaluate `model` on `split/<class>/` and write one self-contained HTML page to `out`:
    training curves, confusion matrix, per-class scores, ROC (two classes), the most confident
    mistakes, Grad-CAM heat maps, unreadable files, and the data section for collected data.

    photoclass.report("models/cats-owls", "data/cats-owls/test", "report.html")
    """
    evaluate(model, split, report_out=out, device=device, progress=progress)
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

    # The graph is traced on the CPU in float32, whatever the model trained on.
    bundle = load_model(model, device="cpu")
    return export_onnx(bundle, Path(out), [Path(p) for p in check], progress=as_progress(progress))


def predict(
    model: str | Path | Bundle,
    paths: Sequence[str | Path],
    *,
    top_k: int = 1,
    reject_unknown: bool = False,
    device: str = "auto",
    follow_symlinks: bool = False,
    progress: bool | Progress = False,
) -> list[Prediction]:
    """Label every photo under `paths` (files or folders) on `device`; unreadable photos get
    an `error`, and so do symbolic links in a folder that lead outside it, unless
    `follow_symlinks=True`. Each prediction's `unknown` says whether the photo looks like none
    of the classes; with `reject_unknown=True` such photos get no `label`."""
    bundle = load_model(model, device=device)
    return predict_paths(
        bundle,
        [Path(p) for p in paths],
        top_k=top_k,
        follow_symlinks=follow_symlinks,
        reject_unknown=reject_unknown,
        progress=as_progress(progress),
    )
