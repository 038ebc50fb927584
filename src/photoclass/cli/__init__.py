"""The `photoclass` command line: each command parses, calls one `photoclass.api` function
and renders the result. No logic lives here; errors a user can cause become one line."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from photoclass import runtime
from photoclass.cli import render
from photoclass.config import ServeConfig, TrainConfig, load
from photoclass.errors import PhotoclassError
from photoclass.progress import RichProgress

app = typer.Typer(
    help="Collect labelled photos, train an image classifier, evaluate it honestly, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def command(name: str | None = None, **kwargs: Any) -> Callable:
    """`app.command` that turns a `PhotoclassError` into one red line and exit code 1."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except PhotoclassError as e:
                render.error(str(e))
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                render.error("interrupted; rerun the same command (train: add --resume) to continue")
                raise typer.Exit(130) from None

        return app.command(name, **kwargs)(run)

    return wrap


# Options shared by several commands, defined once.
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML file with any option below.")]
ModelArg = Annotated[Path, typer.Argument(help="Model folder written by `photoclass train --out`.")]
SplitArg = Annotated[Path, typer.Argument(help="Labelled folder SPLIT/<class>/*.jpg, e.g. DATA/test.")]
_DATA, _MODEL, _OPT, _AUG = "Data", "Model", "Optimiser", "Augmentation"


@command()
def train(
    data: Annotated[Path, typer.Argument(help="Dataset folder: DATA/train/<class>/*.jpg (+ val/, test/).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the model bundle.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="seed-cnn | small-cnn | efficientnet-lite0 (see `photoclass models`).",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(help="Input side in pixels [model default].", rich_help_panel=_MODEL),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help="Training (fine-tuning) epochs [model default].", rich_help_panel=_OPT),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Photos per step [model default].", rich_help_panel=_OPT)
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Learning rate [model default].", rich_help_panel=_OPT)
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(help="rmsprop | adamw | sgd [model default].", rich_help_panel=_OPT),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="fp32 | bf16 (mixed precision) | auto (bf16 where the CPU has it) [model default].",
            rich_help_panel=_OPT,
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(help="Early stopping: epochs without a better validation loss.", rich_help_panel=_OPT),
    ] = None,
    probe_epochs: Annotated[
        int | None,
        typer.Option(help="Pretrained models: head-only epochs on cached features.", rich_help_panel=_OPT),
    ] = None,
    unfreeze: Annotated[
        int | None,
        typer.Option(help="Pretrained models: backbone blocks to fine-tune.", rich_help_panel=_OPT),
    ] = None,
    balance: Annotated[
        bool | None,
        typer.Option(
            "--balance/--no-balance",
            help="Weight the loss by inverse class frequency.",
            rich_help_panel=_OPT,
        ),
    ] = None,
    hflip: Annotated[
        float | None, typer.Option(help="Horizontal-flip probability.", rich_help_panel=_AUG)
    ] = None,
    zoom: Annotated[
        float | None, typer.Option(help="Zoom range (0.2 = 80%..120%).", rich_help_panel=_AUG)
    ] = None,
    shear: Annotated[float | None, typer.Option(help="Shear in degrees.", rich_help_panel=_AUG)] = None,
    crop_scale: Annotated[
        float | None,
        typer.Option(help="Random-resized-crop: smallest area kept (1 = off).", rich_help_panel=_AUG),
    ] = None,
    rotate: Annotated[
        float | None, typer.Option(help="Rotation range in degrees.", rich_help_panel=_AUG)
    ] = None,
    color_jitter: Annotated[
        float | None,
        typer.Option(help="Brightness/contrast/saturation jitter.", rich_help_panel=_AUG),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed: same seed, same model.", rich_help_panel=_DATA)
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(help="Held-out share of train/ when there is no val/.", rich_help_panel=_DATA),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Augmentation worker processes.", rich_help_panel=_DATA)
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already in --out.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Train a classifier on a folder of photos and write MODEL/model.safetensors + photoclass.json.

    Example: photoclass train data/cats-owls --out models/cats-owls
    """
    options = {k: v for k, v in locals().items() if k not in ("data", "out", "resume", "overwrite", "config")}
    cfg = load(TrainConfig, config, "train", options)
    from photoclass import api

    result = api.train(data, out, cfg, resume=resume, overwrite=overwrite)
    render.metrics(result.metrics, title=f"validation ({result.meta['data']['val_source']})")


@command()
def evaluate(
    model: ModelArg,
    split: SplitArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for metrics.json [the model folder].")
    ] = None,
    report: Annotated[bool, typer.Option("--report", help="Also write report.html there.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Accuracy with its 95% interval, loss, per-class precision/recall/F1, confusion matrix, ROC AUC.

    Example: photoclass evaluate models/cats-owls data/cats-owls/test --report
    """
    from photoclass import api

    folder = out or model
    folder.mkdir(parents=True, exist_ok=True)
    evaluation = api.evaluate(
        model,
        split,
        metrics_out=folder / "metrics.json",
        report_out=folder / "report.html" if report else None,
        progress=not as_json,
    )
    render.metrics(evaluation.metrics, title=f"evaluation on {split}", as_json=as_json)
    render.note(
        f"metrics written to {folder / 'metrics.json'}"
        + (f", report to {folder / 'report.html'}" if report else ""),
        quiet=as_json,
    )


@command()
def report(
    model: ModelArg,
    split: SplitArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file to write [MODEL/report.html].")
    ] = None,
) -> None:
    """One self-contained HTML page: training curves, confusion matrix, per-class scores, ROC,
    the most confident mistakes, where the model looked (Grad-CAM) and, for collected data,
    what the dataset holds.

    Example: photoclass report models/cats-owls data/cats-owls/test --out report.html
    """
    from photoclass import api

    path = api.report(model, split, out or model / "report.html")
    render.note(f"report written to {path}")


@command()
def predict(
    model: ModelArg,
    paths: Annotated[list[Path], typer.Argument(help="Photos and/or folders (searched recursively).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many labels to show per photo.")] = 1,
    fmt: Annotated[
        render.Format, typer.Option("--format", "-f", help="Output format.")
    ] = render.Format.table,
) -> None:
    """Label new photos. Unreadable files are reported per file; exit code 1 only if none could be read.

    Example: photoclass predict models/cats-owls photo.jpg more-photos/ --top-k 2 --format csv
    """
    from photoclass import api

    predictions = api.predict(model, paths, top_k=top_k)
    render.predictions(predictions, fmt)
    if not any(p.error is None for p in predictions):
        raise typer.Exit(1)


@command()
def export(
    model: ModelArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")],
    check: Annotated[
        list[Path] | None,
        typer.Option(
            help="Photos or folders to compare ONNX with PyTorch on [random pixels].", show_default=False
        ),
    ] = None,
) -> None:
    """Write the model as ONNX (uint8 pixels in, probabilities out, classes in its metadata),
    checked against PyTorch with onnxruntime.

    Example: photoclass export models/cats-owls --out cats-owls.onnx --check data/cats-owls/val
    """
    from photoclass import api

    result = api.export(model, out, check or [])
    on = f"{result.checked} photos" if check else f"{result.checked} random images"
    render.note(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB); onnxruntime vs PyTorch on {on}: "
        f"largest probability difference {result.max_difference:.1e}, same label {result.same_labels}/{result.checked}"
    )


_SERVE, _BATCH = ServeConfig(), "Batching and limits"


@command()
def serve(
    model: ModelArg,
    host: Annotated[
        str | None, typer.Option(help=f"Address to listen on; 0.0.0.0 = every network ({_SERVE.host}).")
    ] = None,
    port: Annotated[int | None, typer.Option(help=f"Port; 0 = any free one ({_SERVE.port}).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes, EACH loading its own copy of the model and sharing the cores; "
            f"one already batches and uses every core ({_SERVE.workers})."
        ),
    ] = None,
    max_batch: Annotated[
        int | None,
        typer.Option(help=f"Most photos in one forward pass ({_SERVE.max_batch}).", rich_help_panel=_BATCH),
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(
            help=f"How long a photo waits for others to share its pass ({_SERVE.max_wait_ms:g} ms).",
            rich_help_panel=_BATCH,
        ),
    ] = None,
    max_queue: Annotated[
        int | None,
        typer.Option(
            help=f"Requests in at once; more get 503 + Retry-After ({_SERVE.max_queue}).",
            rich_help_panel=_BATCH,
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            help="A browser origin allowed to call the API, e.g. https://example.org (repeatable; none)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="PHOTOCLASS_SERVE_API_KEY",
            show_default=False,
            help="Require `Authorization: Bearer KEY` on /api/ (prefer the variable: a flag shows in `ps`).",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """A web page to drop photos on, and a JSON API (POST a photo to /api/predict), until Ctrl-C.

    Example: photoclass serve models/cats-owls --port 8000
    """
    options = {k: v for k, v in locals().items() if k not in ("model", "cors_origin", "api_key", "config")}
    options["cors_origins"] = tuple(cors_origin) if cors_origin else None
    cfg = load(ServeConfig, config, "serve", options)
    from photoclass import api

    try:
        server = api.serve(model, cfg, api_key=api_key)
    except PhotoclassError as e:
        raise PhotoclassError(render.flags(str(e))) from None
    auth = ' -H "Authorization: Bearer $PHOTOCLASS_SERVE_API_KEY"' if api_key else ""
    render.note(
        f"serving {model} at {server.url} (Ctrl-C stops it). Open it in a browser, or:\n"
        f"  curl{auth} --data-binary @photo.jpg {server.url}/api/predict"
    )
    # uvicorn stops gracefully on Ctrl-C, then raises the signal again for the caller.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    render.note("stopped")


@command()
def models() -> None:
    """List the model architectures and their training recipes.

    Example: photoclass models
    """
    from photoclass.models import get_model_entry, list_models

    render.models([get_model_entry(name) for name in list_models()])


# ----------------------------------------------------------------------------------------------
# collect, and the Flickr simulator (photoclass.collecting, photoclass.sim)

_SEARCH, _POLITE = "Search", "Politeness"


@command()
def collect(
    classes: Annotated[list[str], typer.Argument(help="Class names; each is also the search text and tag.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create or complete.")],
    per_class: Annotated[int | None, typer.Option(help="Photos to keep per class (960).")] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(help="CLASS=TEXT: search text for one class (repeatable).", rich_help_panel=_SEARCH),
    ] = None,
    tags: Annotated[
        str | None,
        typer.Option(help='Required tags, comma list (the class); "" for none.', rich_help_panel=_SEARCH),
    ] = None,
    license: Annotated[
        str | None,
        typer.Option(help='License ids or names: "4,5,9", "CC BY 2.0" (all).', rich_help_panel=_SEARCH),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(help="c (800 px), z (640), l (1024), m (500) ... (c).", rich_help_panel=_SEARCH),
    ] = None,
    split: Annotated[str | None, typer.Option(help="train,val,test shares (0.8,0.1,0.1).")] = None,
    test_per_class: Annotated[int | None, typer.Option(help="This many test photos per class.")] = None,
    seed: Annotated[int | None, typer.Option(help="Split seed: same photos and seed, same split.")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Simultaneous downloads (32).", rich_help_panel=_POLITE)
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Image requests per second per host (500).", rich_help_panel=_POLITE)
    ] = None,
    api_url: Annotated[str | None, typer.Option(help="Flickr REST endpoint (a `photoclass sim`).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Search Flickr for each class; download, check, de-duplicate and split the photos into
    OUT/{train,val,test}/<class>/. The API key comes from --config (flickr_api_key),
    $FLICKR_API_KEY or ~/.config/photoclass/config.toml. Rerun the same command to resume.

    Example: photoclass collect cat owl --out data/cats-owls --per-class 960
    """
    from photoclass.collecting import collect as collect_photos
    from photoclass.collecting.flickr import find_api_key
    from photoclass.config import CollectConfig

    if query and not all("=" in q for q in query):
        raise PhotoclassError("--query takes CLASS=TEXT, e.g. --query owl='owl bird'")
    overrides = {
        "classes": list(classes),
        "queries": dict(q.split("=", 1) for q in query) if query else None,
        "split": [float(x) for x in split.split(",")] if split else None,
        "per_class": per_class,
        "tags": tags,
        "license": license,
        "size": size,
        "test_per_class": test_per_class,
        "seed": seed,
        "concurrency": concurrency,
        "rate": rate,
        "api_url": api_url,
    }
    cfg = load(CollectConfig, config, "collect", overrides)
    collect_photos(cfg, out, find_api_key(config))


sim_app = typer.Typer(help="A local Flickr simulator: try `collect` with no key and no network.")
app.add_typer(sim_app, name="sim")


@sim_app.command("serve")
def sim_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    classes: Annotated[str, typer.Option(help="Comma-separated class names.")] = "cat,owl",
    photos_per_class: Annotated[int, typer.Option(help="Synthetic photos per class.")] = 1200,
    seed: Annotated[int, typer.Option(help="Corpus seed.")] = 0,
) -> None:
    """Serve a Flickr-compatible API and photo host on 127.0.0.1 until Ctrl-C.

    Example: photoclass sim serve --classes cat,owl
    """
    from photoclass.sim import SimServer

    sim = SimServer(tuple(classes.split(",")), photos_per_class, port=port, seed=seed)
    render.note(
        f"Flickr simulator at {sim.api_url} (Ctrl-C stops it). In another shell:\n"
        f"  FLICKR_API_KEY={sim.api_key} photoclass collect {classes.replace(',', ' ')} "
        f"--out data/sim --api-url {sim.api_url}"
    )
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        render.note("simulator stopped")


# ----------------------------------------------------------------------------------------------
# The whole pipeline: the tutorial in one command, and its offline demo (photoclass.pipeline)


@command()
def run(
    classes: Annotated[list[str], typer.Argument(help="Class names to collect and learn, e.g. cat owl.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for data/, model/, metrics.json, report.html.")
    ],
    per_class: Annotated[
        int | None, typer.Option(help="Photos to collect per class (960, as the tutorial).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model to train (efficientnet-lite0; seed-cnn = the tutorial's).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs [model default].")] = None,
    simulator: Annotated[
        bool, typer.Option("--simulator", help="Use a local Flickr simulator: no key, no network.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML file with [collect] and [train] tables.")
    ] = None,
) -> None:
    """The reference tutorial in one command: collect photos from Flickr, train, evaluate on the
    held-out test photos, write the report. Rerun the same command to resume after a stop.

    Example: FLICKR_API_KEY=... photoclass run cat owl --out runs/cats-owls
    """
    from photoclass.collecting.flickr import find_api_key
    from photoclass.config import CollectConfig
    from photoclass.pipeline import run as run_pipeline

    collect_cfg = load(CollectConfig, config, "collect", {"classes": list(classes), "per_class": per_class})
    train_cfg = load(TrainConfig, config, "train", {"model": model, "epochs": epochs})
    if simulator:
        from photoclass.sim import SimServer

        with SimServer(tuple(collect_cfg.classes), 2 * collect_cfg.per_class) as sim:
            cfg = dataclasses.replace(collect_cfg, api_url=sim.api_url)
            summary = run_pipeline(out, cfg, sim.api_key, train_cfg, progress=RichProgress())
    else:
        summary = run_pipeline(out, collect_cfg, find_api_key(config), train_cfg, progress=RichProgress())
    render.run_summary(summary)


@command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the demo's data, model and report.")
    ] = Path("photoclass-demo"),
) -> None:
    """The whole pipeline offline in about two minutes: a local Flickr simulator serves synthetic
    photos of two kinds of drawn objects; photoclass collects, trains, evaluates and reports.

    Example: photoclass demo --out /tmp/photoclass-demo
    """
    from photoclass.pipeline import demo as run_demo

    render.run_summary(run_demo(out, progress=RichProgress()))


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show debugging messages.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only show warnings and errors.")] = False,
) -> None:
    render.configure_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def main() -> None:
    runtime.reexec_with_jemalloc()
    # The jemalloc re-exec runs `python -m photoclass`; the usage line names the command.
    app(prog_name="photoclass")


if __name__ == "__main__":
    sys.exit(main())
