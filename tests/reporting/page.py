"""Reading a report back: its sections, tables and elements, as a test needs them."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _Tables(HTMLParser):
    """Every table with an id, as rows of cell texts (header row included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def section(html: str, id: str) -> str | None:
    """The HTML of `<section id=...>`, or None when the report has no such section."""
    match = re.search(rf'<section id="{id}">(.*?)</section>', html, re.S)
    return match.group(1) if match else None


def text_of(html: str, id: str) -> str:
    match = re.search(rf'id="{id}"[^>]*>(.*?)<', html, re.S)
    assert match, f"no element with id={id}"
    return match.group(1)


def count(html: str, cls: str) -> int:
    return len(re.findall(rf'<figure class="{cls}">', html))
