"""Terminal output for the CLI: rich tables for people, JSON and CSV for programs."""

from __future__ import annotations

import csv
import enum
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from photoclass.evaluation.metrics import headline

out = Console()
err = Console(stderr=True)


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def error(message: str) -> None:
    # Messages quote paths, class names and commands, whose brackets are not rich markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


class _LogHandler(logging.Handler):
    """The library's log records as lines on stderr: warnings marked, information plain."""

    def emit(self, record: logging.LogRecord) -> None:
        message = escape(record.getMessage())
        if record.levelno >= logging.WARNING:
            message = f"[yellow]warning:[/] {message}"
        err.print(message, highlight=False, soft_wrap=True)


def configure_logging(level: int) -> None:
    """Show the `photoclass` logger's records at `level` and above (once per process)."""
    logger = logging.getLogger("photoclass")
    logger.setLevel(level)
    if not any(isinstance(h, _LogHandler) for h in logger.handlers):
        logger.addHandler(_LogHandler())
    logger.propagate = False


def note(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        err.print(escape(message), highlight=False, soft_wrap=True)


def metrics(metrics: dict[str, Any], *, title: str, as_json: bool = False) -> None:
    if as_json:
        out.print_json(json.dumps(metrics))
        return
    out.print(f"[bold]{title}[/]: {headline(metrics)}", highlight=False)
    unknown = metrics.get("unknown")
    if unknown:
        left_out = ", left out of these numbers" if unknown["rejected"] else ""
        out.print(
            f"{unknown['flagged']} photo(s) ({unknown['share']:.1%}) look like none of the classes{left_out}",
            highlight=False,
        )
    per_class = Table("class", "precision", "recall", "F1", "photos", title="per class")
    for name, row in metrics["per_class"].items():
        per_class.add_row(
            name,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    out.print(per_class)
    classes = metrics["classes"]
    confusion = Table("true \\ predicted", *classes, title="confusion matrix")
    for name, row in zip(classes, metrics["confusion_matrix"], strict=True):
        confusion.add_row(name, *map(str, row))
    out.print(confusion)


def predictions(rows: Sequence[Any], fmt: Format) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    elif fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        k = max((len(r.top) for r in rows), default=1)
        header = ["path", "label", "probability"]
        for i in range(2, k + 1):
            header += [f"label_{i}", f"probability_{i}"]
        writer.writerow([*header, "unknown", "error"])
        for r in rows:
            extra = [x for label, p in r.top[1:] for x in (label, f"{p:.6f}")]
            extra += [""] * (2 * (k - 1) - len(extra))
            prob = "" if r.probability is None else f"{r.probability:.6f}"
            unknown = "" if r.unknown is None else str(r.unknown).lower()
            writer.writerow([r.path, r.label or "", prob, *extra, unknown, r.error or ""])
    else:
        table = Table("photo", "prediction", "probability")
        for r in rows:
            if r.error:
                table.add_row(r.path, f"[red]unreadable: {r.error}[/]", "")
                continue
            others = ", ".join(f"{name} {p:.1%}" for name, p in r.top[1:])
            if r.label is None:  # rejected: looks like none of the classes
                best, p = r.top[0]
                table.add_row(
                    r.path, f"[yellow]unknown[/]  [dim](none of the classes; closest {best})[/]", ""
                )
                continue
            flag = "  [yellow](looks like none of the classes)[/]" if r.unknown else ""
            table.add_row(
                r.path,
                r.label + (f"  [dim](then {others})[/]" if others else "") + flag,
                f"{r.probability:.1%}",
            )
        out.print(table)


def models(entries: Sequence[Any]) -> None:
    table = Table("model", "what it is", "size", "epochs", "batch", "optimiser")
    for e in entries:
        r = e.defaults()
        table.add_row(
            e.name,
            e.summary,
            f"{r.image_size} px",
            str(r.epochs),
            str(r.batch_size),
            f"{r.optimizer} lr {r.lr:g}",
        )
    out.print(table)


def collect_summary(summary: Any) -> None:
    """What `collect` left in its folder: per class, found / kept / rejected / failed and the
    photos in each split; below, the reasons and the cost."""
    splits = ("train", "val", "test")
    table = Table(title=f"collected into {summary.data_dir}", title_justify="left", caption_justify="left")
    for column in ("class", "found", "kept", "rejected", "failed", *splits):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, c in summary.classes.items():
        per_split = [str(summary.splits.get(s, {}).get(name, 0)) for s in splits]
        table.add_row(
            escape(name), str(c.found), str(c.downloaded), str(c.rejected), str(c.failed), *per_split
        )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.reasons.items())) or "none"
    table.caption = (
        f"rejected/failed by reason: {reasons}. {summary.api_calls} API calls, {summary.elapsed:.1f} s."
        + (f" Flickr ran out of photos for: {', '.join(summary.short)}." if summary.short else "")
    )
    out.print(table)


def key_check(check: Any) -> None:
    """What `collect --check-key` saw."""
    out.print(
        f"[bold green]the key works[/] at {escape(check.api_url)}: flickr.test.echo answered, and a "
        f"search for {escape(repr(check.text))} found {check.total} photos ({check.calls} API calls)",
        highlight=False,
    )
    for photo in check.photos:
        size = f"{photo.width}x{photo.height} ({photo.size})" if photo.url else "no usable size"
        out.print(f"  {photo.id}  {size}  {escape(photo.page_url)}", highlight=False)


def run_summary(summary: Any) -> None:
    """What `run` and `demo` did, in a few lines a newcomer can act on."""
    c = summary.collected
    kept = sum(n.downloaded for n in c.classes.values())
    rejected = sum(n.rejected + n.failed for n in c.classes.values())
    out.print(f"[bold green]photoclass finished in {summary.seconds:.0f} s[/]", highlight=False)
    out.print(f"  photos: {kept} collected, {rejected} rejected or failed ({c.data_dir})", highlight=False)
    out.print(f"  check:  {escape(_check_line(summary.checked))}", highlight=False)
    out.print(f"  test:   {headline(summary.evaluation.metrics)}", highlight=False)
    out.print(f"  model:  {summary.model}", highlight=False)
    out.print(f"  report: {summary.report}", highlight=False)


def _check_line(result: Any) -> str:
    moved = f"; {len(result.moved)} moved to {result.root / '_quarantine'}" if result.moved else ""
    return f"{result.found()}{moved} ({result.report})"


def check_result(result: Any, fmt: Format) -> None:
    """`check`'s findings as a table and a summary line (or JSON, CSV); what to do next on stderr."""
    root = result.root
    if fmt is Format.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        columns = ["kind", "path", "confidence", "action", "detail", "split", "label", "suggested", "other"]
        writer.writerow(columns)
        for finding in result.findings:
            row = finding.to_dict(root)
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
        return
    if result.findings:
        table = Table("kind", "file", "confidence", "why", "what to do")
        for f in result.findings:
            row = f.to_dict(root)
            table.add_row(
                result.kinds[f.kind].title,
                escape(row["path"]),
                f"{f.confidence:.2f}",
                escape(f.detail),
                escape(f.action),
            )
        out.print(table)
    out.print(escape(result.headline()), highlight=False, soft_wrap=True)
    if result.moved:
        note(f"undo: photoclass check {root} --undo")
    else:
        movable = len(result.to_fix())
        if movable:
            note(
                f"--fix would move {movable} file(s) with confidence >= {result.min_confidence:g} into {root / '_quarantine'}"
            )
    if result.report is not None:
        note(f"report written to {result.report}")
