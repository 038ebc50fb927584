"""The report in a real browser (headless Chromium): no console error, every image decoded.

Screenshots go to tests/reporting/artifacts/ (ignored by git) for a person to look at."""

from __future__ import annotations

import pytest

from ..helpers import ARTIFACTS, CHROMIUM, browser_page
from .conftest import Built

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]


@pytest.mark.parametrize("name", ["binary", "three"])
def test_report_renders_in_chromium(name: str, request: pytest.FixtureRequest) -> None:
    built: Built = request.getfixturevalue(f"{name}_report")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report-{name}.png"
    with browser_page(built.path.as_uri()) as (page, errors):
        images = page.eval_on_selector_all("img", "all => all.map(i => [i.complete, i.naturalWidth])")
        sections = page.eval_on_selector_all("section", "all => all.map(s => s.id)")
        page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert errors == []
    assert images and all(done and width > 0 for done, width in images), images
    expected = ["training", "confusion", "per-class", "calibration", "mistakes", "gradcam", "skipped"]
    if name == "binary":
        expected[3:3] = ["roc"]
        expected.append("data")
    assert sections == expected
