"""The HTML report of really trained models: every section there, with the evaluation's numbers."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import photoclass
from photoclass.bundle import load_bundle
from photoclass.cli import app
from photoclass.collecting.manifest import summarize
from photoclass.evaluation.metrics import compute_metrics, headline
from photoclass.reporting import write_report
from photoclass.reporting.report import CAMS, MISTAKES, training_section

from .conftest import Built
from .page import count, section, tables, text_of


def expected_confusion(built: Built) -> list[list[int]]:
    """Counted here from the per-photo predictions, independently of `metrics.py`."""
    k = built.evaluation.probs.shape[1]
    matrix = np.zeros((k, k), dtype=int)
    for true, pred in zip(built.evaluation.labels, built.evaluation.probs.argmax(1), strict=True):
        matrix[true, pred] += 1
    return matrix.tolist()


def confusion_in(page: str, classes: list[str]) -> list[list[int]]:
    found = {
        (html.unescape(t), html.unescape(p)): int(n)
        for t, p, n in re.findall(r'data-true="(.*?)" data-predicted="(.*?)">(\d+)<', page)
    }
    assert len(found) == len(classes) ** 2
    return [[found[t, p] for p in classes] for t in classes]


def test_opens_with_the_verdict(binary_report: Built) -> None:
    metrics = binary_report.evaluation.metrics
    line = html.unescape(text_of(binary_report.html, "verdict"))
    assert line == headline(metrics)
    low, high = metrics["accuracy_ci95"]
    assert f"accuracy {metrics['accuracy']:.1%} (95% CI {low:.1%}-{high:.1%}) on 20 photos" in line


def test_confusion_matrix_counts_are_the_evaluations(binary_report: Built, three_report: Built) -> None:
    for built in (binary_report, three_report):
        classes = built.evaluation.metrics["classes"]
        assert confusion_in(built.html, classes) == expected_confusion(built)
        assert expected_confusion(built) == built.evaluation.metrics["confusion_matrix"]
        assert '<img src="data:image/png' in section(built.html, "confusion")


def test_per_class_table(binary_report: Built, three_report: Built) -> None:
    for built in (binary_report, three_report):
        rows = tables(built.html)["per-class-table"]
        labels, preds = built.evaluation.labels, built.evaluation.probs.argmax(1)
        assert [r[0] for r in rows[1:]] == built.evaluation.metrics["classes"]
        for c, (name, precision, recall, f1, support) in enumerate(rows[1:]):
            m = built.evaluation.metrics["per_class"][name]
            assert [precision, recall, f1] == [f"{m[key]:.3f}" for key in ("precision", "recall", "f1")]
            assert int(support) == int((labels == c).sum())
            assert float(recall) == round(
                float(((preds == c) & (labels == c)).sum() / (labels == c).sum()), 3
            )


def test_roc_only_for_two_classes(binary_report: Built, three_report: Built) -> None:
    roc = section(binary_report.html, "roc")
    assert roc is not None and '<img src="data:image/png' in roc
    assert text_of(roc, "auc") == f"{binary_report.evaluation.metrics['roc_auc']:.3f}"
    assert section(three_report.html, "roc") is None
    assert 'href="#roc"' not in three_report.html


def test_training_curves_show_every_epoch(
    binary_report: Built, three_report: Built, trained_three: Path
) -> None:
    history = load_bundle(trained_three).meta["history"]
    part = section(three_report.html, "training")
    assert '<img src="data:image/png' in part
    rows = tables(part)["history"][1:]
    assert len(rows) == len(history) == 8
    assert [r[5] for r in rows] == [f"{h['val_loss']:.4f}" for h in history]
    best = load_bundle(trained_three).meta["best_epoch"]
    assert f"those of epoch {best + 1} (train phase)" in part
    assert len(tables(binary_report.html)["history"]) == 1 + 3


def test_mistakes_gallery_shows_the_worst_first(binary_report: Built, three_report: Built) -> None:
    for built in (binary_report, three_report):
        ev = built.evaluation
        wrong = int((ev.probs.argmax(1) != ev.labels).sum())
        part = section(built.html, "mistakes")
        assert count(part, "mistake") == min(MISTAKES, wrong)
        if wrong:
            classes = ev.metrics["classes"]
            loss = -np.log(ev.probs[np.arange(len(ev.labels)), ev.labels])
            worst = int(np.argmax(np.where(ev.probs.argmax(1) != ev.labels, loss, -np.inf)))
            first = re.search(r'<figure class="mistake">.*?</figure>', part, re.S).group(0)
            assert f"true <b>{classes[ev.labels[worst]]}</b>" in first
            assert f'predicted <b class="pred">{classes[ev.probs[worst].argmax()]}</b>' in first
            assert f"{ev.probs[worst].max():.1%}" in first
            assert Path(ev.paths[worst]).name in first


def test_gradcam_for_right_and_wrong_photos(binary_report: Built, three_report: Built) -> None:
    for built in (binary_report, three_report):
        ev = built.evaluation
        wrong = int((ev.probs.argmax(1) != ev.labels).sum())
        part = section(built.html, "gradcam")
        assert count(part, "cam wrong") == min(CAMS, wrong)
        assert count(part, "cam correct") == min(CAMS, len(ev.labels) - wrong)
        assert part.count('<img src="data:image/jpeg') == 2 * (
            count(part, "cam wrong") + count(part, "cam correct")
        )


def test_data_section_only_for_collected_data(
    binary_report: Built, three_report: Built, collected: Path
) -> None:
    assert section(three_report.html, "data") is None
    summary = summarize(collected)
    assert summary is not None
    found = tables(section(binary_report.html, "data"))
    assert found["data-photos"] == [
        ["class", "train", "val", "total"],
        ["cat", "5", "10", "15"],
        ["owl", "5", "10", "15"],
        ["all", "10", "20", "30"],
    ]
    assert found["data-rejections"][1:] == [["duplicate", "4"], ["corrupt", "2"], ["timeout", "2"]]
    assert {row[0]: row[1] for row in found["data-licenses"][1:]} == {
        name: str(n) for name, n in summary["licenses"].items()
    }
    href = re.search(r'<a id="attribution" href="(.*?)"', binary_report.html).group(1)
    assert (binary_report.path.parent / html.unescape(href)).resolve() == Path(
        summary["attribution"]
    ).resolve()


def test_unreadable_files_are_listed(trained_three: Path, shapes3: Path, tmp_path: Path) -> None:
    split = tmp_path / "data" / "test"
    shutil.copytree(shapes3 / "test", split, symlinks=True)
    (split / "circle" / "broken.jpg").write_bytes(b"not a photo")
    out = photoclass.report(trained_three, split, tmp_path / "report.html", progress=False)
    page = out.read_text(encoding="utf-8")
    rows = tables(page)["skipped-table"][1:]
    assert rows == [
        ["evaluation", str(split / "circle" / "broken.jpg"), "not an image (unrecognised format)"]
    ]
    assert "30 photos" in text_of(page, "verdict")
    assert section(page, "data") is None  # no manifest next to this split


def test_the_page_stands_alone(binary_report: Built, three_report: Built) -> None:
    for built in (binary_report, three_report):
        page = built.html
        sources = re.findall(r'<img src="([^"]*)"', page)
        assert sources and all(
            s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources
        )
        assert not re.search(r"<script|<link|\b(src|href)=\"(https?:)?//", page)
        assert len(page) < 1_000_000
        assert section(page, "skipped") is not None and "every file was read" in page


def test_class_names_are_escaped(three_report: Built, trained_three: Path, tmp_path: Path) -> None:
    names = ["<i>circle</i>", 'sq"uare', "tri&angle"]
    bundle = load_bundle(trained_three)
    bundle.meta["classes"] = names
    ev = three_report.evaluation
    metrics = {**compute_metrics(ev.labels, ev.probs, names), "split": ev.metrics["split"]}
    page = write_report(bundle, dataclasses.replace(ev, metrics=metrics), tmp_path / "r.html").read_text()
    assert "<i>" not in page and 'sq"uare' not in page and "tri&angle" not in page
    assert "&lt;i&gt;circle&lt;/i&gt;" in page and 'data-true="sq&quot;uare"' in page
    assert confusion_in(page, names) == three_report.evaluation.metrics["confusion_matrix"]


def test_cli_report(trained_three: Path, shapes3: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "nested" / "report.html"
    result = runner.invoke(app, ["report", str(trained_three), str(shapes3 / "test"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report written to {out}" in result.output.replace("\n", "")
    assert 'id="verdict"' in out.read_text(encoding="utf-8")

    result = runner.invoke(app, ["report", str(tmp_path), str(shapes3 / "test")])
    assert result.exit_code == 1
    assert "is not a photoclass model" in result.output


def test_probe_epochs_come_first_and_are_marked() -> None:
    row = {"train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.7}
    history = [{"phase": "probe", "epoch": 1, **row}, {"phase": "probe", "epoch": 2, **row}]
    history += [{"phase": "train", "epoch": e, **row, "val_loss": 0.6 - e / 10} for e in (1, 2)]
    part = training_section(history, best=3).html()
    rows = tables(part)["history"][1:]
    assert [r[:3] for r in rows] == [
        ["1", "probe", "1"],
        ["2", "probe", "2"],
        ["3", "train", "1"],
        ["4", "train", "2"],
    ]
    assert "those of epoch 4 (train phase): validation loss 0.4000" in part
