"""The HTML report: what the model learned, where it fails, and what the data holds.

One self-contained file (plots and thumbnails embedded, no script, no external asset).
Each section is built by one function from the bundle and the evaluation; a section with
nothing to show is left out (ROC for more than two classes, data for folders that `collect`
did not make)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from photoclass.bundle import Bundle
from photoclass.data.decode import decode_image
from photoclass.evaluation.calibration import expected_calibration_error, nll, reliability, softmax
from photoclass.evaluation.evaluate import Evaluation
from photoclass.evaluation.metrics import headline
from photoclass.files import atomic_write
from photoclass.reporting import page, plots
from photoclass.reporting.gradcam import grad_cam, overlay
from photoclass.reporting.page import THUMB, Section

MISTAKES = 12  # photos in the top-losses gallery
CAMS = 4  # Grad-CAM examples of each kind, right and wrong
SPLITS = ("train", "val", "test")


def write_report(bundle: Bundle, evaluation: Evaluation, out: Path, *, data_dir: Path | None = None) -> Path:
    """Write the report on `bundle`, judged by `evaluation`, to the HTML file `out`.

    `data_dir`, the dataset folder, adds a data section when `photoclass collect` made it
    (it holds a `manifest.sqlite`)."""
    metrics, meta, out = evaluation.metrics, bundle.meta, Path(out)
    sections = [
        training_section(meta.get("history", []), meta.get("best_epoch")),
        confusion_section(metrics),
        per_class_section(metrics),
        roc_section(metrics),
        calibration_section(bundle, evaluation),
        mistakes_section(evaluation),
        gradcam_section(bundle, evaluation),
        skipped_section(evaluation.skipped, meta.get("skipped", [])),
        data_section(Path(data_dir), out.parent) if data_dir is not None else None,
    ]
    shown = [s for s in sections if s is not None]
    version = meta.get("versions", {}).get("photoclass", "")
    html = page.render(
        title=f"photoclass report: {meta['architecture']} on {Path(metrics['split']).name}",
        verdict=headline(metrics),
        facts=_facts(meta, metrics),
        sections=shown,
        version=version,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    return out


def _facts(meta: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    data = meta.get("data", {})
    return {
        "model": f"{meta['architecture']}, {meta['image_size']} px input",
        "classes": ", ".join(meta["classes"]),
        "trained on": f"{data.get('train', '?')} photos from {data.get('root', '?')} "
        f"(validated on {data.get('val', '?')}, {data.get('val_source', '?')})",
        "evaluated on": metrics["split"],
    }


# -- sections ----------------------------------------------------------------------------------


def training_section(history: Sequence[dict[str, Any]], best: int | None) -> Section:
    if not history:
        return Section(
            "training", "Training curves", page.note("This model bundle holds no training history.")
        )
    best = len(history) - 1 if best is None else best
    kept = history[best]
    # Epochs are numbered across phases (a pretrained model's probe, then train), as in the plot.
    rows = [
        (i + 1, r["phase"], r["epoch"], f"{r['train_loss']:.4f}", f"{r['train_acc']:.1%}",
         f"{r['val_loss']:.4f}", f"{r['val_acc']:.1%}")
        for i, r in enumerate(history)
    ]  # fmt: skip
    head = (
        "epoch",
        "phase",
        "phase epoch",
        "train loss",
        "train accuracy",
        "validation loss",
        "validation accuracy",
    )
    body = (
        page.note(
            f"The weights kept are those of epoch {best + 1} ({kept['phase']} phase): validation loss "
            f"{kept['val_loss']:.4f}, accuracy {kept['val_acc']:.1%}. Validation loss far above the "
            "training loss means overfitting; both high means underfitting."
        )
        + page.img(plots.training_curves(history, best), "loss and accuracy per epoch")
        + "<details><summary>numbers per epoch</summary>"
        + page.table(head, rows, id="history", numeric_from=2)
        + "</details>"
    )
    return Section("training", "Training curves", body)


def confusion_section(metrics: dict[str, Any]) -> Section:
    classes, matrix = metrics["classes"], metrics["confusion_matrix"]
    head = "".join(f'<th class="num">{escape(c)}</th>' for c in classes)
    rows = []
    for true, counts in zip(classes, matrix, strict=True):
        cells = "".join(
            f'<td class="num{" hit" if true == pred else ""}" data-true="{escape(true)}" '
            f'data-predicted="{escape(pred)}">{n}</td>'
            for pred, n in zip(classes, counts, strict=True)
        )
        rows.append(f"<tr><th>{escape(true)}</th>{cells}</tr>")
    table = (
        f'<table id="confusion-table"><thead><tr><th>true \\ predicted</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    picture = page.img(plots.confusion_matrix(matrix, classes), "confusion matrix")
    body = (
        page.note("Rows are the true classes, columns the predicted ones; the diagonal is right.")
        + f'<div class="row">{picture}{table}</div>'
    )
    return Section("confusion", "Confusion matrix", body)


def per_class_section(metrics: dict[str, Any]) -> Section:
    rows = [
        (name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", m["support"])
        for name, m in metrics["per_class"].items()
    ]
    body = page.note(
        "Precision: of the photos given this label, the share that had it. Recall: of the photos "
        f"of this class, the share found. F1 is their harmonic mean; macro F1 {metrics['macro_f1']:.3f}."
    ) + page.table(("class", "precision", "recall", "F1", "photos"), rows, id="per-class-table")
    return Section("per-class", "Per class", body)


def roc_section(metrics: dict[str, Any]) -> Section | None:
    if "roc_curve" not in metrics:
        return None
    positive, auc = metrics["classes"][1], metrics["roc_auc"]
    curve = metrics["roc_curve"]
    body = (
        page.note(
            f"Every threshold on the probability of {positive}: AUC {auc:.3f} is the chance that a random "
            f"{positive} photo scores above a random {metrics['classes'][0]} one (0.5 is a coin toss)."
        )
        + f'<p>ROC AUC <span id="auc">{auc:.3f}</span></p>'
        + page.img(plots.roc_curve(curve["fpr"], curve["tpr"], auc, positive), "ROC curve")
    )
    return Section("roc", "ROC curve", body)


def calibration_section(bundle: Bundle, evaluation: Evaluation) -> Section | None:
    """Do the probabilities mean what they say? The reliability diagram and the expected
    calibration error, before and after the bundle's temperature."""
    if evaluation.logits is None or not len(evaluation.labels):
        return None
    labels, temperature = evaluation.labels, bundle.temperature
    before = softmax(evaluation.logits)
    after = softmax(evaluation.logits, temperature)
    ece_before = expected_calibration_error(labels, before)
    ece_after = expected_calibration_error(labels, after)
    if "temperature" in bundle.meta:
        how = (
            f"Probabilities are the logits divided by a temperature of {temperature:.2f}, fitted on "
            "the validation photos, then softmax."
        )
    else:
        how = "This bundle predates calibration: its probabilities are uncalibrated (temperature 1)."
    curves = {"before (T = 1)": reliability(labels, before)}
    if "temperature" in bundle.meta:
        curves[f"after (T = {temperature:.2f})"] = reliability(labels, after)
    body = (
        page.note(
            f"{how} Among photos given 90% confidence, a calibrated model is right 90% of the time. "
            "The expected calibration error (ECE) is the gap between confidence and accuracy, averaged "
            "over confidence bins weighted by their photos (0 is perfect)."
        )
        + page.table(
            ("probabilities", "ECE", "log-loss"),
            [
                ("before calibration", f"{ece_before:.3f}", f"{nll(evaluation.logits, labels):.3f}"),
                (
                    "after calibration",
                    f"{ece_after:.3f}",
                    f"{nll(evaluation.logits, labels, temperature):.3f}",
                ),
            ],
            id="calibration-table",
        )
        + page.img(plots.reliability_diagram(curves), "reliability diagram: accuracy against confidence")
    )
    return Section("calibration", "Calibration", body)


def _caption(evaluation: Evaluation, i: int) -> str:
    classes = evaluation.metrics["classes"]
    true, pred = int(evaluation.labels[i]), int(evaluation.probs[i].argmax())
    path = Path(evaluation.paths[i])
    return (
        f"<figcaption>true <b>{escape(classes[true])}</b><br>"
        f'predicted <b class="pred">{escape(classes[pred])}</b> {evaluation.probs[i, pred]:.1%}<br>'
        f'<span class="path" title="{escape(str(path))}">{escape(path.name)}</span></figcaption>'
    )


def top_losses(evaluation: Evaluation) -> np.ndarray:
    """Indexes of the wrong predictions, the most confidently wrong (highest loss) first."""
    n = len(evaluation.labels)
    losses = -np.log(np.clip(evaluation.probs[np.arange(n), evaluation.labels], 1e-12, 1.0))
    wrong = np.flatnonzero(evaluation.probs.argmax(1) != evaluation.labels)
    return wrong[np.argsort(-losses[wrong], kind="stable")]


def confident_hits(evaluation: Evaluation, k: int) -> list[int]:
    """Up to `k` right predictions, the most confident of each class in turn."""
    preds = evaluation.probs.argmax(1)
    confidence = evaluation.probs.max(1)
    per_class = [
        list(hits[np.argsort(-confidence[hits], kind="stable")])
        for c in range(evaluation.probs.shape[1])
        if len(hits := np.flatnonzero((preds == c) & (evaluation.labels == c)))
    ]
    picked: list[int] = []
    while len(picked) < k and any(per_class):
        for queue in per_class:
            if queue and len(picked) < k:
                picked.append(int(queue.pop(0)))
    return picked


def mistakes_section(evaluation: Evaluation) -> Section:
    worst = top_losses(evaluation)
    if not len(worst):
        return Section("mistakes", "Most confident mistakes", page.note("No mistakes on these photos."))
    figures = []
    for i in worst[:MISTAKES]:
        path = Path(evaluation.paths[i])
        thumb = page.img(plots.thumbnail(decode_image(path, THUMB)), path.name)
        figures.append(f'<figure class="mistake">{thumb}{_caption(evaluation, int(i))}</figure>')
    body = (
        page.note(
            f"{len(worst)} of {len(evaluation.labels)} photos were misclassified; the {len(figures)} the model "
            "was surest about are shown, worst first. Look for wrong labels, ambiguous photos and "
            "what the mistakes share."
        )
        + f'<div class="gallery">{"".join(figures)}</div>'
    )
    return Section("mistakes", "Most confident mistakes", body)


def gradcam_section(bundle: Bundle, evaluation: Evaluation) -> Section | None:
    chosen = [int(i) for i in top_losses(evaluation)[:CAMS]] + confident_hits(evaluation, CAMS)
    if not chosen:
        return None
    pixels = np.stack([decode_image(Path(evaluation.paths[i]), bundle.image_size) for i in chosen])
    heat = grad_cam(bundle.model, pixels, bundle.normalize)
    figures: dict[str, list[str]] = {"correct": [], "wrong": []}
    for i, cam in zip(chosen, heat, strict=True):
        path = Path(evaluation.paths[i])
        photo = decode_image(path, THUMB)
        outcome = "correct" if evaluation.probs[i].argmax() == evaluation.labels[i] else "wrong"
        pair = page.img(plots.thumbnail(photo), path.name) + page.img(
            plots.thumbnail(overlay(photo, cam)), f"where the model looked in {path.name}"
        )
        figures[outcome].append(
            f'<figure class="cam {outcome}"><div class="pair">{pair}</div>{_caption(evaluation, i)}</figure>'
        )
    body = page.note(
        "Where the model found its evidence for the class it predicted (Grad-CAM, scaled per photo: red "
        "is the strongest, blue the weakest). A model that looks at the background or the frame has "
        "learned a shortcut."
    )
    for outcome, title in (("wrong", "Wrong"), ("correct", "Right")):
        if figures[outcome]:
            body += f'<h3>{title}</h3><div class="gallery">{"".join(figures[outcome])}</div>'
    return Section("gradcam", "Where the model looked", body)


def skipped_section(evaluated: Sequence[dict[str, str]], trained: Sequence[dict[str, str]]) -> Section:
    rows = [("evaluation", s["path"], s["reason"]) for s in evaluated]
    rows += [("training", s["path"], s["reason"]) for s in trained]
    if not rows:
        return Section("skipped", "Unreadable files", page.note("None: every file was read."))
    body = page.note(
        f"{len(evaluated)} file(s) could not be read for this evaluation and {len(trained)} for training; "
        "they were left out of every number above."
    ) + page.table(("when", "file", "reason"), rows, id="skipped-table", numeric_from=3)
    return Section("skipped", "Unreadable files", body)


def data_section(data_dir: Path, page_dir: Path) -> Section | None:
    """What `collect` found and kept (None for a folder it did not make); `page_dir` is where
    the report lives, so the link to the attribution file is relative to it."""
    from photoclass.collecting.manifest import summarize

    summary = summarize(data_dir)
    if summary is None:
        return None
    photos: dict[str, dict[str, int]] = summary["photos"]
    order = {split: i for i, split in enumerate(SPLITS)}  # train, val, test, then any other
    splits = sorted({s for per in photos.values() for s in per}, key=lambda s: (order.get(s, len(order)), s))
    totals = [sum(per.get(s, 0) for per in photos.values()) for s in splits]
    rows = [
        (name, *(per.get(s, 0) for s in splits), sum(per.values())) for name, per in sorted(photos.items())
    ]
    rows.append(("all", *totals, sum(totals)))
    body = "<h3>Photos kept, per class and split</h3>" + page.table(
        ("class", *splits, "total"), rows, id="data-photos"
    )
    rejections = sorted(summary["rejections"].items(), key=lambda kv: (-kv[1], str(kv[0])))
    body += "<h3>Rejected or failed, by reason</h3>" + (
        page.table(("reason", "photos"), [(r or "unknown", n) for r, n in rejections], id="data-rejections")
        if rejections
        else page.note("None.")
    )
    licenses = summary["licenses"]
    total = sum(licenses.values()) or 1
    body += "<h3>Licenses of the kept photos</h3>" + page.table(
        ("license", "photos", "share"),
        [(name, n, f"{n / total:.0%}") for name, n in licenses.items()],
        id="data-licenses",
    )
    if summary["attribution"]:
        href = Path(os.path.relpath(summary["attribution"], page_dir)).as_posix()
        body += (
            f'<p>Credit the photographers as the licenses require: <a id="attribution" href="{escape(href)}">'
            f"{escape(summary['attribution'])}</a> names the owner, license and page of every photo.</p>"
        )
    return Section("data", "The data", page.note(f"Collected from Flickr into {data_dir}.") + body)
