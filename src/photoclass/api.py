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
from photoclass.checking.findings import DEFAULT_MODEL, FIX_CONFIDENCE
from photoclass.config import CollectConfig, ServeConfig, TrainConfig, validate
from photoclass.errors import ConfigError
from photoclass.progress import Progress, as_progress
from photoclass.runtime import check_engine

# The stages that need torch (~1 s to import) are imported on first use, so that `collect`
# and the simulator start at once.
if TYPE_CHECKING:
    from photoclass.bundle import Bundle
    from photoclass.checking.findings import CheckResult, Move
    from photoclass.collecting import CollectSummary, KeyCheck
    from photoclass.evaluation.evaluate import Evaluation
    from photoclass.exporting import ExportResult
    from photoclass.pipeline import RunSummary
    from photoclass.prediction.predict import Prediction
    from photoclass.serving.server import ModelServer
    from photoclass.sim import Faults, SimServer
    from photoclass.training.loop import TrainResult

runtime.tune_allocator()


def load_model(model: str | Path | Bundle, *, device: str = "auto", engine: str | None = None) -> Bundle:
    """Load a bundle folder written by `train` (no pickle: safetensors + JSON) onto `device`
    ("auto": a GPU if there is one, else the CPU; or "cpu", "cuda", "cuda:1", "mps"), to
    predict with `engine`: "auto" (the default: onnxruntime on a CPU where it is installed and
    the model computes in float32, else PyTorch), "torch" or "onnx" (see
    `photoclass.prediction.engine`). A loaded `Bundle` is returned as it is, with `engine`
    when one is given."""
    from photoclass.bundle import Bundle, load_bundle

    if isinstance(model, Bundle):
        return model if engine is None else dataclasses.replace(model, engine=check_engine(engine))
    return load_bundle(Path(model), device, engine or "auto")


def _options(cls: type, config: Any, options: dict[str, Any]) -> Any:
    """`config` (or the defaults) with `options` as field overrides; unknown names are a
    `ConfigError` (dataclasses.replace would raise a TypeError)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(sorted(known))}"
        )
    return dataclasses.replace(config or cls(), **options)


def collect(
    classes: Sequence[str],
    out: str | Path,
    config: CollectConfig | None = None,
    *,
    api_key: str | None = None,
    config_file: str | Path | None = None,
    progress: bool | Progress = True,
    **options: Any,
) -> CollectSummary:
    """Search Flickr for each of `classes` and download, check, de-duplicate and split the photos
    into `out/{train,val,test}/<class>/` (+ `manifest.sqlite`, `ATTRIBUTION.csv`). Rerunning
    the same call resumes. `options` override fields of `config` (e.g. `per_class=200,
    license="CC BY 2.0,CC0"`; `api_url=` points it at a `photoclass.simulator()`).

    The API key is `api_key`, else `flickr_api_key` in `config_file` (a TOML file), else
    $FLICKR_API_KEY, else `flickr_api_key` in ~/.config/photoclass/config.toml.

        photoclass.collect(["cat", "owl"], "data/cats-owls", per_class=200)
    """
    from photoclass.collecting import collect as _collect
    from photoclass.collecting.flickr import find_api_key

    config = _options(CollectConfig, config, {**options, "classes": tuple(classes)})
    key = find_api_key(api_key, _path(config_file))
    return _collect(config, Path(out), key, progress=as_progress(progress))


def check_key(
    text: str = "cat",
    *,
    api_key: str | None = None,
    config_file: str | Path | None = None,
    config: CollectConfig | None = None,
    **options: Any,
) -> KeyCheck:
    """Check once that the key and this client work against the real endpoint (or
    `api_url`): calls `flickr.test.echo` and asks one search page for `text`. The key is
    found as in `collect`; `config`/`options` give `api_url`, `timeout`, `retries`.

        photoclass.check_key()   # KeyCheck(total=..., photos=[...]) or a one-line error
    """
    from photoclass.collecting.flickr import FlickrClient, find_api_key
    from photoclass.collecting.flickr import check_key as _check_key
    from photoclass.collecting.retry import Backoff

    config = _options(CollectConfig, config, options)
    validate(config)
    key = find_api_key(api_key, _path(config_file))
    backoff = Backoff(config.retries, config.backoff)
    with FlickrClient(key, api_url=config.api_url, backoff=backoff, timeout=config.timeout) as flickr:
        return _check_key(flickr, text, config.size)


def run(
    classes: Sequence[str],
    out: str | Path,
    collect_config: CollectConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    simulator: bool = False,
    clean: bool = False,
    api_key: str | None = None,
    config_file: str | Path | None = None,
    progress: bool | Progress = True,
    **options: Any,
) -> RunSummary:
    """The whole tutorial: collect `classes` from Flickr, check them, train, evaluate on the
    test photos and write the reports, all under `out` (`data/`, `check.html`, `model/`,
    `metrics.json`, `report.html`). `clean=True` quarantines what the check is confident
    about (`check(fix=True)`) before training. Rerunning the same call resumes. `options` override fields of either
    config by name (`per_class=200, model="small-cnn", epochs=5`; `seed` sets both).
    `simulator=True` collects from a local Flickr simulator instead: no key, no network.

        photoclass.run(["cat", "owl"], "runs/cats-owls", per_class=300)
    """
    from photoclass import pipeline
    from photoclass.collecting.flickr import find_api_key

    collect_names = {f.name for f in dataclasses.fields(CollectConfig)}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - collect_names - train_names)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for collect or train")
    collect_cfg = _options(
        CollectConfig,
        collect_config,
        {**{k: v for k, v in options.items() if k in collect_names}, "classes": tuple(classes)},
    )
    train_cfg = _options(TrainConfig, train_config, {k: v for k, v in options.items() if k in train_names})
    if simulator:
        return pipeline.run_simulated(
            Path(out), collect_cfg, train_cfg, clean=clean, progress=as_progress(progress)
        )
    key = find_api_key(api_key, _path(config_file))
    return pipeline.run(Path(out), collect_cfg, key, train_cfg, clean=clean, progress=as_progress(progress))


def demo(out: str | Path = "photoclass-demo", *, progress: bool | Progress = True) -> RunSummary:
    """The whole pipeline offline in a couple of minutes: a local Flickr simulator serves
    synthetic photos of two kinds of drawn objects; they are collected, a model trained,
    evaluated and reported on, under `out`, through the same code a real `run` uses."""
    from photoclass import pipeline

    return pipeline.demo(Path(out), progress=as_progress(progress))


def simulator(
    classes: Sequence[str] = ("cat", "owl"),
    photos_per_class: int = 1200,
    *,
    seed: int = 0,
    port: int = 0,
    faults: Faults | None = None,
    api_key: str | None = None,
) -> SimServer:
    """A running Flickr simulator on 127.0.0.1 (`port` 0: any free one) serving synthetic
    photos of `classes`; pass its `api_url` and `api_key` to `collect`, and `stop()` it (or
    use it in a `with` block). `faults` (`photoclass.sim.Faults`) makes it misbehave.

        with photoclass.simulator(["cat", "owl"], 300) as sim:
            photoclass.collect(["cat", "owl"], "data", api_key=sim.api_key, api_url=sim.api_url)
    """
    from photoclass.sim import Faults, SimServer

    if not classes:
        raise ConfigError("no classes given; name at least one, e.g. `classes=('cat', 'owl')`")
    if not 1 <= photos_per_class <= 999_999:
        raise ConfigError(f"`photos_per_class` must be in [1, 999999] (got {photos_per_class})")
    try:
        server = SimServer(
            tuple(classes), photos_per_class, faults=faults or Faults(), seed=seed, port=port, api_key=api_key
        )
    except OSError as e:
        raise ConfigError(
            f"cannot listen on 127.0.0.1:{port} ({e.strerror}); choose another `port`"
        ) from None
    return server.start()


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


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
    links leading outside `data` are skipped unless `follow_symlinks=True`. Started by
    torchrun in several processes, they train one model together and rank 0 writes the bundle
    (README "Scaling out")."""
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
    engine: str | None = None,
    follow_symlinks: bool = False,
    progress: bool | Progress = True,
) -> Evaluation:
    """Score `model` on a labelled folder `split/<class>/` on `device` with `engine` (see
    `load_model`); optionally write `metrics.json` and the HTML report (see `report`).
    `metrics["unknown"]` counts the photos that look like none of the classes; with
    `reject_unknown=True` they are left out of the other numbers. Symbolic links leading outside `split` are skipped unless
    `follow_symlinks=True`."""
    from photoclass.evaluation.evaluate import evaluate_split

    bundle = load_model(model, device=device, engine=engine)
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
    engine: str | None = None,
    progress: bool | Progress = True,
) -> Path:
    """Evaluate `model` on `split/<class>/` and write one self-contained HTML page to `out`:
    training curves, confusion matrix, per-class scores, ROC (two classes), the most confident
    mistakes, Grad-CAM heat maps, unreadable files, and the data section for collected data.

    photoclass.report("models/cats-owls", "data/cats-owls/test", "report.html")
    """
    evaluate(model, split, report_out=out, device=device, engine=engine, progress=progress)
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
    engine: str | None = None,
    follow_symlinks: bool = False,
    progress: bool | Progress = False,
) -> list[Prediction]:
    """Label every photo under `paths` (files or folders) on `device` with `engine` (see
    `load_model`); unreadable photos get an `error`, and so do symbolic links in a folder
    that lead outside it, unless `follow_symlinks=True`. Each prediction's `unknown` says whether the photo looks like none
    of the classes; with `reject_unknown=True` such photos get no `label`."""
    from photoclass.prediction.predict import predict_paths

    bundle = load_model(model, device=device, engine=engine)
    return predict_paths(
        bundle,
        [Path(p) for p in paths],
        top_k=top_k,
        follow_symlinks=follow_symlinks,
        reject_unknown=reject_unknown,
        progress=as_progress(progress),
    )


def check(
    data: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    report_out: str | Path | None = None,
    fix: bool = False,
    min_confidence: float = FIX_CONFIDENCE,
    follow_symlinks: bool = False,
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
    features describe the photos. Symbolic links leading outside `data` are skipped unless
    `follow_symlinks=True`.

    result = photoclass.check("data/cats-owls", report_out="check.html")
    for f in result.findings: print(f.kind, f.path, f"{f.confidence:.2f}", f.action)
    """
    from photoclass.checking.check import check_dataset
    from photoclass.checking.report import write_check_report

    result = check_dataset(
        Path(data),
        model=model,
        fix=fix,
        min_confidence=min_confidence,
        follow_symlinks=follow_symlinks,
        progress=as_progress(progress),
    )
    if report_out is not None:
        result.report = write_check_report(result, Path(report_out))
    return result


def undo_check(data: str | Path) -> list[Move]:
    """Move every file that `check(fix=True)` quarantined in `data/_quarantine/` back where it
    was, newest first, and restore the manifest rows it changed; returns the moves made."""
    from photoclass.checking.quarantine import undo

    return undo(Path(data))


def serve(
    model: str | Path | Bundle,
    config: ServeConfig | None = None,
    *,
    api_key: str | None = None,
    **options: Any,
) -> ModelServer:
    """A web page and JSON API that predict photos with `model`, bound to its port now and
    serving once run. `options` override fields of `config` (`host="127.0.0.1"`, `port=8000`,
    `workers`, `device`, `max_batch`, `max_wait_ms`, `parallel_batches`, `max_queue`, `cors_origins`; see
    `ServeConfig`).

    server = photoclass.serve("models/co")
    server.run()                       # until Ctrl-C or SIGTERM, then stops gracefully

    with photoclass.serve("models/co", port=0) as server:   # in a background thread
        httpx.post(f"{server.url}/api/predict", content=open("cat.jpg", "rb").read()).json()

    Concurrent requests are batched: one forward pass takes what arrived within
    `max_wait_ms` of the first, up to `max_batch` photos. With `api_key`, `/api/` requests
    must send `Authorization: Bearer <api_key>`. With `workers` > 1 each worker process
    loads its own copy of `model` (a folder, then), and only `run()` serves them."""
    from photoclass.bundle import Bundle
    from photoclass.serving.server import ModelServer

    config = dataclasses.replace(config or ServeConfig(), **options)
    validate(config)
    bundle = load_model(model, device=config.device)  # checked here, before any worker process starts
    served = Path(model) if config.workers > 1 and not isinstance(model, Bundle) else bundle
    return ModelServer(served, config, api_key=api_key)
