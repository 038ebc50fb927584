"""The `photoclass` command line: each command parses, calls one `photoclass.api` function
and renders the result. No logic lives here; errors a user can cause become one line."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from photoclass import runtime
from photoclass.checking.findings import DEFAULT_MODEL, FIX_CONFIDENCE
from photoclass.cli import render
from photoclass.cli.options import config_options, translate
from photoclass.config import CollectConfig, ServeConfig, TrainConfig, load
from photoclass.errors import PhotoclassError
from photoclass.progress import RichProgress
from photoclass.runtime import DEVICES, ENGINES

app = typer.Typer(
    help="Collect labelled photos, train an image classifier, evaluate it honestly, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def command(name: str | None = None, *, group: typer.Typer | None = None, **kwargs: Any) -> Callable:
    """`app.command` (or `group`'s) that turns a `PhotoclassError` into one red line and exit
    code 1."""

    def wrap(fn: Callable) -> Callable:
        # The command list shows the docstring's first paragraph: as one line, not broken
        # where the source wraps it.
        kwargs.setdefault("short_help", " ".join((fn.__doc__ or "").split("\n\n")[0].split()))

        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except PhotoclassError as e:
                render.error(translate(str(e)))
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                render.error("interrupted; rerun the same command (train: add --resume) to continue")
                raise typer.Exit(130) from None

        return (group or app).command(name, **kwargs)(run)

    return wrap


# Options shared by several commands, defined once.
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML file with any option below.")]
ModelArg = Annotated[Path, typer.Argument(help="Model folder written by `photoclass train --out`.")]
SplitArg = Annotated[Path, typer.Argument(help="Labelled folder SPLIT/<class>/*.jpg, e.g. DATA/test.")]
DeviceOpt = Annotated[str, typer.Option(help=f"{DEVICES} (auto: a GPU if there is one, else the CPU).")]
EngineOpt = Annotated[
    str,
    typer.Option(
        help=f"{' | '.join(ENGINES)}: what computes the predictions (auto: onnxruntime on a CPU "
        "where installed, else PyTorch)."
    ),
]
FollowOpt = Annotated[
    bool,
    typer.Option("--follow-symlinks", help="Follow symbolic links that lead outside the folder read."),
]
RejectOpt = Annotated[
    bool,
    typer.Option("--reject-unknown", help="Give no label to photos that look like none of the classes."),
]


@command()
@config_options(TrainConfig)
def train(
    data: Annotated[Path, typer.Argument(help="Dataset folder: DATA/train/<class>/*.jpg (+ val/, test/).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the model bundle.")],
    options: dict[str, Any],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already in --out.")] = False,
    follow_symlinks: FollowOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train a classifier on a folder of photos and write MODEL/model.safetensors + photoclass.json.

    Example: photoclass train data/cats-owls --out models/cats-owls
    """
    from photoclass import api

    cfg = load(TrainConfig, config, "train", options)
    result = api.train(data, out, cfg, resume=resume, overwrite=overwrite, follow_symlinks=follow_symlinks)
    if result.main:  # under torchrun, the process that wrote the model speaks for all
        render.metrics(result.metrics, title=f"validation ({result.meta['data']['val_source']})")


@command()
def evaluate(
    model: ModelArg,
    split: SplitArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for metrics.json (default: the model folder).")
    ] = None,
    report: Annotated[bool, typer.Option("--report", help="Also write report.html there.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    reject_unknown: Annotated[
        bool,
        typer.Option(
            "--reject-unknown", help="Leave photos that look like none of the classes out of the numbers."
        ),
    ] = False,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    follow_symlinks: FollowOpt = False,
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
        reject_unknown=reject_unknown,
        device=device,
        engine=engine,
        follow_symlinks=follow_symlinks,
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
        Path | None, typer.Option("--out", "-o", help="HTML file to write (default MODEL/report.html).")
    ] = None,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
) -> None:
    """One self-contained HTML page: training curves, confusion matrix, per-class scores, ROC,
    the most confident mistakes, where the model looked (Grad-CAM) and, for collected data,
    what the dataset holds.

    Example: photoclass report models/cats-owls data/cats-owls/test --out report.html
    """
    from photoclass import api

    path = api.report(model, split, out or model / "report.html", device=device, engine=engine)
    render.note(f"report written to {path}")


@command()
def predict(
    model: ModelArg,
    paths: Annotated[list[Path], typer.Argument(help="Photos and/or folders (searched recursively).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many labels to show per photo.")] = 1,
    fmt: Annotated[
        render.Format, typer.Option("--format", "-f", help="Output format.")
    ] = render.Format.table,
    reject_unknown: RejectOpt = False,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    follow_symlinks: FollowOpt = False,
) -> None:
    """Label new photos, and flag those that look like none of the classes. Unreadable files are
    reported per file; exit code 1 only if none could be read.

    Example: photoclass predict models/cats-owls photo.jpg more-photos/ --top-k 2 --format csv
    """
    from photoclass import api

    predictions = api.predict(
        model,
        paths,
        top_k=top_k,
        reject_unknown=reject_unknown,
        device=device,
        engine=engine,
        follow_symlinks=follow_symlinks,
    )
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
            help="Photos or folders to compare ONNX with PyTorch on (default: random pixels).",
            show_default=False,
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


@command()
@config_options(ServeConfig)
def serve(
    options: dict[str, Any],
    model: ModelArg,
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
    cfg = load(ServeConfig, config, "serve", {**options, "cors_origins": tuple(cors_origin or ()) or None})
    from photoclass import api

    server = api.serve(model, cfg, api_key=api_key)
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


@command()
def check(
    data: Annotated[Path, typer.Argument(help="Dataset folder: DATA/train/<class>/*.jpg (+ val/, test/).")],
    model: Annotated[
        str, typer.Option(help="Pretrained model whose features describe the photos.")
    ] = DEFAULT_MODEL,
    report: Annotated[
        Path | None,
        typer.Option("--report", "-r", help="Also write an HTML page with a thumbnail of each finding."),
    ] = None,
    fmt: Annotated[
        render.Format, typer.Option("--format", "-f", help="Output format.")
    ] = render.Format.table,
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Move confident findings' files into DATA/_quarantine/ (never deletes)."),
    ] = False,
    min_confidence: Annotated[
        float, typer.Option(help="--fix moves findings at this confidence or more.")
    ] = FIX_CONFIDENCE,
    undo: Annotated[
        bool, typer.Option("--undo", help="Put back every file --fix moved (and restore the manifest).")
    ] = False,
    follow_symlinks: FollowOpt = False,
) -> None:
    """Find what is wrong with a dataset before training on it: layout, unreadable files, image
    quality, duplicates and leakage between splits, likely mislabelled and off-topic photos, class
    imbalance, and a collected dataset's manifest against its folder.

    Example: photoclass check data/cats-owls --report check.html
    """
    from photoclass import api

    if undo:
        if fix:
            raise PhotoclassError("--undo puts back what --fix moved; use one or the other")
        moves = api.undo_check(data)
        render.note(f"put back {len(moves)} file(s) from {data / '_quarantine'}")
        return
    result = api.check(
        data,
        model=model,
        report_out=report,
        fix=fix,
        min_confidence=min_confidence,
        follow_symlinks=follow_symlinks,
        progress=fmt is render.Format.table,
    )
    render.check_result(result, fmt)


# ----------------------------------------------------------------------------------------------
# collect, and the Flickr simulator


@command()
@config_options(CollectConfig)
def collect(
    options: dict[str, Any],
    classes: Annotated[
        list[str] | None,
        typer.Argument(help="Class names; each is also the search text and tag.", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Dataset folder to create or complete.", show_default=False),
    ] = None,
    check_key: Annotated[
        bool,
        typer.Option(
            "--check-key",
            help="Only check the key against the API: flickr.test.echo and one search page (no download).",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Search Flickr for each class; download, check, de-duplicate and split the photos into
    OUT/{train,val,test}/<class>/. The API key comes from --config (flickr_api_key),
    $FLICKR_API_KEY or ~/.config/photoclass/config.toml. Rerun the same command to resume.

    Example: photoclass collect cat owl --out data/cats-owls --per-class 960
    """
    from photoclass import api

    cfg = load(CollectConfig, config, "collect", {**options, "classes": list(classes or [])})
    if check_key:
        render.key_check(api.check_key((classes or ["cat"])[0], config=cfg, config_file=config))
        return
    if out is None or not classes:
        raise typer.BadParameter("give the classes and --out (or --check-key alone)", param_hint="'--out'")
    render.collect_summary(api.collect(classes, out, cfg, config_file=config, progress=RichProgress()))


sim_app = typer.Typer(help="A local Flickr simulator: try `collect` with no key and no network.")
app.add_typer(sim_app, name="sim")


@command("serve", group=sim_app)
def sim_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    classes: Annotated[str, typer.Option(help="Comma-separated class names.")] = "cat,owl",
    photos_per_class: Annotated[int, typer.Option(help="Synthetic photos per class.")] = 1200,
    seed: Annotated[int, typer.Option(help="Corpus seed.")] = 0,
) -> None:
    """Serve a Flickr-compatible API and photo host on 127.0.0.1 until Ctrl-C.

    Example: photoclass sim serve --classes cat,owl
    """
    from photoclass import api

    sim = api.simulator(classes.split(","), photos_per_class, port=port, seed=seed)
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
# The whole pipeline: the tutorial in one command, and its offline demo


@command()
@config_options(CollectConfig, only=("per_class",), into="collect_options")
@config_options(TrainConfig, only=("model", "epochs"), into="train_options")
def run(
    classes: Annotated[list[str], typer.Argument(help="Class names to collect and learn, e.g. cat owl.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for data/, model/, metrics.json, report.html.")
    ],
    collect_options: dict[str, Any],
    train_options: dict[str, Any],
    simulator: Annotated[
        bool, typer.Option("--simulator", help="Use a local Flickr simulator: no key, no network.")
    ] = False,
    clean: Annotated[
        bool, typer.Option("--clean", help="Quarantine what `check` flags with confidence before training.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML file with \\[collect] and \\[train] tables.")
    ] = None,
) -> None:
    """The reference tutorial in one command: collect photos from Flickr, check them, train,
    evaluate on the held-out test photos, write the reports. Rerun the same command to resume.

    Example: FLICKR_API_KEY=... photoclass run cat owl --out runs/cats-owls
    """
    from photoclass import api

    collect_cfg = load(CollectConfig, config, "collect", {**collect_options, "classes": list(classes)})
    train_cfg = load(TrainConfig, config, "train", train_options)
    summary = api.run(
        classes,
        out,
        collect_cfg,
        train_cfg,
        simulator=simulator,
        clean=clean,
        config_file=config,
        progress=RichProgress(),
    )
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
    from photoclass import api

    render.run_summary(api.demo(out, progress=RichProgress()))


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
