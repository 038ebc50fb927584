"""The whole tutorial in one call: collect -> check -> train -> evaluate -> report, each stage
writing its files under one folder so any stage can be rerun alone:

    OUT/data/{train,val,test}/<class>/   OUT/data/manifest.sqlite   OUT/data/ATTRIBUTION.csv
    OUT/check.html   (OUT/data/_quarantine/ with `clean=True`)
    OUT/model/model.safetensors + photoclass.json
    OUT/metrics.json   OUT/report.html

`run` talks to Flickr (or any Flickr-compatible server); `demo` starts the local simulator
and runs the very same code against it, offline.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from photoclass.bundle import META
from photoclass.checking.findings import CheckResult
from photoclass.collecting import CollectSummary, collect
from photoclass.config import CollectConfig, TrainConfig
from photoclass.evaluation.evaluate import Evaluation
from photoclass.progress import NO_PROGRESS, Progress
from photoclass.training.checkpoint import NAME as CHECKPOINT

log = logging.getLogger(__name__)

# The demo: two synthetic classes, small enough to finish in a couple of minutes on 2 cores,
# big enough that the accuracy interval says something (60 test photos).
DEMO_CLASSES = ("cat", "owl")
DEMO_COLLECT = CollectConfig(classes=DEMO_CLASSES, per_class=300, size="m", split=(0.7, 0.1, 0.2))
DEMO_TRAIN = TrainConfig(model="efficientnet-lite0", image_size=160)


@dataclass
class RunSummary:
    """Where everything went, and the headline numbers."""

    out: Path
    collected: CollectSummary
    model: Path
    evaluation: Evaluation
    report: Path
    seconds: float
    checked: CheckResult


def run(
    out: Path,
    collect_config: CollectConfig,
    api_key: str,
    train_config: TrainConfig | None = None,
    *,
    clean: bool = False,
    progress: Progress = NO_PROGRESS,
) -> RunSummary:
    """Collect photos for `collect_config.classes`, check them (`OUT/check.html`; `clean=True`
    quarantines what the check is confident about before training), train, evaluate on the
    test split, report.

    Rerunning after an interruption continues where it stopped: collect downloads only what
    is missing, and training resumes from its last checkpoint."""
    from photoclass import api  # the API imports this module: import it at call time

    started = time.perf_counter()
    out = Path(out)
    data, model = out / "data", out / "model"
    log.info("1/5 collect %s -> %s", ", ".join(collect_config.classes), data)
    collected = collect(collect_config, data, api_key, progress=progress is not NO_PROGRESS)
    log.info("2/5 check %s -> %s", data, out / "check.html")
    checked = api.check(data, report_out=out / "check.html", fix=clean, progress=progress)
    log.info("check: %s", checked.headline())
    log.info("3/5 train -> %s", model)
    if not (model / META).exists() or (model / CHECKPOINT).exists():
        api.train(data, model, train_config, resume=(model / CHECKPOINT).exists(), progress=progress)
    log.info("4/5 evaluate on the test split, 5/5 report")
    evaluation = api.evaluate(
        model,
        data / "test",
        metrics_out=out / "metrics.json",
        report_out=out / "report.html",
        progress=progress,
    )
    seconds = time.perf_counter() - started
    return RunSummary(out, collected, model, evaluation, out / "report.html", seconds, checked)


def demo(out: Path, *, progress: Progress = NO_PROGRESS) -> RunSummary:
    """The whole pipeline, offline: a local Flickr simulator serves synthetic photos of
    procedurally drawn objects, and `run` collects, trains, evaluates and reports on them."""
    from photoclass.sim import SimServer

    with SimServer(classes=DEMO_CLASSES, photos_per_class=DEMO_COLLECT.per_class * 2, seed=0) as sim:
        log.info("Flickr simulator on %s (synthetic photos, no network)", sim.base_url)
        config = dataclasses.replace(DEMO_COLLECT, api_url=sim.api_url)
        return run(Path(out), config, sim.api_key, DEMO_TRAIN, progress=progress)
