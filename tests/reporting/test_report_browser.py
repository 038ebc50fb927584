"""The report in a real browser (headless Chromium): no console error, every image decoded.

Screenshots go to tests/reporting/artifacts/ (ignored by git) for a person to look at."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..helpers import CHROMIUM, CHROMIUM_FLAGS
from .conftest import Built

ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]


@pytest.mark.parametrize("name", ["binary", "three"])
def test_report_renders_in_chromium(name: str, request: pytest.FixtureRequest) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")
    built: Built = request.getfixturevalue(f"{name}_report")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report-{name}.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(built.path.as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", "all => all.map(i => [i.complete, i.naturalWidth])")
            sections = page.eval_on_selector_all("section", "all => all.map(s => s.id)")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {shot}")
    assert errors == []
    assert images and all(done and width > 0 for done, width in images), images
    expected = ["training", "confusion", "per-class", "mistakes", "gradcam", "skipped"]
    if name == "binary":
        expected[3:3] = ["roc"]
        expected.append("data")
    assert sections == expected
