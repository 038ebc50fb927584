"""The check's HTML page: every finding shown with its thumbnail (or listed), each kind's rule
stated, self-contained, and rendered by a real browser without an error."""

from __future__ import annotations

import re

import pytest

from ..helpers import ARTIFACTS, CHROMIUM, browser_page
from ..reporting.page import section, tables
from .conftest import Checked

pytestmark = pytest.mark.slow


def test_every_finding_is_on_the_page(noisy_checked: Checked) -> None:
    result, html = noisy_checked.result, noisy_checked.html
    figures = re.findall(r'<figure class="finding" data-kind="([a-z_]+)"', html)
    listed = sum(len(rows) - 1 for name, rows in tables(html).items() if name.startswith("table-"))
    assert len(figures) + listed == len(result.findings)
    assert sorted(set(figures)) == sorted(result.counts())
    summary = {row[0]: row for row in tables(html)["summary-table"][1:]}
    for kind in result.kinds.values():  # every rule stated, with the count found
        assert summary[kind.title][1] == kind.rule and summary[kind.title][2] == str(
            result.counts()[kind.name]
        )
    assert f"confidence {result.min_confidence:g} or more" in html


def test_the_page_stands_alone(noisy_checked: Checked) -> None:
    html = noisy_checked.html
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "<script" not in html and not re.search(r'(href|src)="https?:', html)
    assert section(html, "duplicates") is not None and section(html, "labels") is not None


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}")
def test_the_page_renders_in_chromium(noisy_checked: Checked, tmp_path) -> None:
    page_file = tmp_path / "check.html"
    page_file.write_text(noisy_checked.html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "check.png"
    with browser_page(page_file.as_uri()) as (page, errors):
        images = page.eval_on_selector_all("img", "all => all.map(i => [i.complete, i.naturalWidth])")
        sections = page.eval_on_selector_all("section", "all => all.map(s => s.id)")
        page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert errors == []
    assert images and all(done and width > 0 for done, width in images)
    assert sections[0] == "summary" and {"duplicates", "labels"} <= set(sections)
