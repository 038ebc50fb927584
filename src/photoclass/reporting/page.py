"""The page every photoclass report is built on (`template.html`: one self-contained file, its
images embedded, no script, no external asset), and the HTML pieces its sections are made of.
Every piece escapes what it is given; a section's body is HTML already escaped.

The training report (`report.py`) and the dataset check (`photoclass.checking.report`) both
use it, so they look alike and escape alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from importlib import resources
from string import Template
from typing import Any

from photoclass.reporting.plots import Picture

THUMB = 128  # thumbnail side in pixels


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str  # HTML, already escaped

    def html(self) -> str:
        return f'<section id="{self.id}">\n<h2>{escape(self.title)}</h2>\n{self.body}\n</section>'


def render(
    *, title: str, verdict: str, facts: dict[str, str], sections: Sequence[Section], version: str
) -> str:
    """The whole page: a title, a one-line verdict, a list of facts, a menu, the sections."""
    template = Template(resources.files(__package__).joinpath("template.html").read_text("utf-8"))
    return template.substitute(
        title=escape(title),
        verdict=escape(verdict),
        facts="".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts.items()),
        nav="".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections),
        sections="\n".join(s.html() for s in sections),
        version=escape(version),
        generated=datetime.now().strftime("%Y-%m-%d %H:%M"),
    )


def img(picture: Picture, alt: str) -> str:
    size = f'width="{picture.width}" height="{picture.height}"'
    return f'<img src="{picture.uri}" {size} alt="{escape(alt)}">'


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], *, id: str, numeric_from: int = 1) -> str:
    """A table of escaped cells; columns from `numeric_from` on are right-aligned numbers."""

    def cell(tag: str, i: int, value: Any) -> str:
        align = ' class="num"' if i >= numeric_from else ""
        return f"<{tag}{align}>{escape(str(value))}</{tag}>"

    header = "".join(cell("th", i, h) for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{id}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'
