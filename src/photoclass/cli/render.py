"""Terminal output for the CLI: rich tables for people, JSON and CSV for programs."""

from __future__ import annotations

import csv
import enum
import json
import logging
import re
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


def flags(message: str) -> str:
    """A library message in the command line's terms: `` `max_batch` `` becomes `--max-batch`,
    `` `overwrite=True` `` `--overwrite`, `` `epochs=5` `` `--epochs 5`."""

    def flag(match: re.Match[str]) -> str:
        name, value = match[1].replace("_", "-"), match[2]
        return f"--{name}" if value in (None, "True") else f"--{name} {value}"

    return re.sub(r"`([a-z][a-z0-9_]*)(?:=([^`\s]+))?`", flag, message)


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
        writer.writerow([*header, "error"])
        for r in rows:
            extra = [x for label, p in r.top[1:] for x in (label, f"{p:.6f}")]
            extra += [""] * (2 * (k - 1) - len(extra))
            prob = "" if r.probability is None else f"{r.probability:.6f}"
            writer.writerow([r.path, r.label or "", prob, *extra, r.error or ""])
    else:
        table = Table("photo", "prediction", "probability")
        for r in rows:
            if r.error:
                table.add_row(r.path, f"[red]unreadable: {r.error}[/]", "")
            else:
                label = ", ".join(f"{name} {p:.1%}" for name, p in r.top[1:])
                table.add_row(
                    r.path,
                    r.label + (f"  [dim](then {label})[/]" if label else ""),
                    f"{r.probability:.1%}",
                )
        out.print(table)


def models(entries: Sequence[Any]) -> None:
    table = Table("model", "what it is", "size", "epochs", "batch", "optimiser")
    for e in entries:
        r = e.recipe
        table.add_row(
            e.name,
            e.summary,
            f"{r.image_size} px",
            str(r.epochs),
            str(r.batch_size),
            f"{r.optimizer} lr {r.lr:g}",
        )
    out.print(table)


def run_summary(summary: Any) -> None:
    """What `run` and `demo` did, in a few lines a newcomer can act on."""
    c = summary.collected
    kept = sum(n.downloaded for n in c.classes.values())
    rejected = sum(n.rejected + n.failed for n in c.classes.values())
    out.print(f"[bold green]photoclass finished in {summary.seconds:.0f} s[/]", highlight=False)
    out.print(f"  photos: {kept} collected, {rejected} rejected or failed ({c.data_dir})", highlight=False)
    out.print(f"  test:   {headline(summary.evaluation.metrics)}", highlight=False)
    out.print(f"  model:  {summary.model}", highlight=False)
    out.print(f"  report: {summary.report}", highlight=False)
