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
from photoclass.checking.findings import DEFAULT_MODEL, FIX_CONFIDENCE, CheckResult, Move
from photoclass.config import TrainConfig
from photoclass.evaluation.evaluate import Evaluation, evaluate_split
from photoclass.prediction.predict import Prediction, predict_paths
from photoclass.progress import Progress, as_progress

if TYPE_CHECKING:
    from photoclass.exporting import ExportResult
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


def check(
    data: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    report_out: str | Path | None = None,
    fix: bool = False,
    min_confidence: float = FIX_CONFIDENCE,
    progress: bool | Progress = True,
) -> CheckResult:
    """Find what is wrong with the dataset `data/{train,val,test}/<class>/` before training on it:
    layout problems, unreadable files, image quality (dark, light, blurry, low information, odd
    aspect ratio or size, grayscale), duplicates within a split and leakage across splits, likely
    mislabelled photos (with the class they look like), off-topic photos, class imbalance, and
    for a collected dataset, where the manifest and the folder disagree.

    Each finding has a path, a kind, a confidence in [0, 1] and a suggested action. `report_out`
    writes an HTML page with a thumbnail of each. `fix=True` moves the files of the findings a
    fix applies to, with confidence `min_confidence` or more, into `data/_quarantine/<kind>/`
    (nothing is deleted; `undo_check` puts them back). `model` is the pretrained model whose
    features describe the photos.

    result = photoclass.check("data/cats-owls", report_out="check.html")
    for f in result.findings: print(f.kind, f.path, f"{f.confidence:.2f}", f.action)
    """
    from photoclass.checking.check import check_dataset
    from photoclass.checking.report import write_check_report

    result = check_dataset(
        Path(data), model=model, fix=fix, min_confidence=min_confidence, progress=as_progress(progress)
    )
    if report_out is not None:
        result.report = write_check_report(result, Path(report_out))
    return result


def undo_check(data: str | Path) -> list[Move]:
    """Move every file that `check(fix=True)` quarantined in `data/_quarantine/` back where it
    was, newest first, and restore the manifest rows it changed; returns the moves made."""
    from photoclass.checking.quarantine import undo

    return undo(Path(data))
