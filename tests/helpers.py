"""Small constants and helpers shared by test modules."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# A model that really trains in seconds on the small fixture datasets.
TINY = dict(model="small-cnn", image_size=48, epochs=3, batch_size=16, workers=0)

# Headless Chromium for the browser tests (Debian's package; Playwright drives it).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).parent / "reporting" / "artifacts"  # screenshots, ignored by git


@contextmanager
def browser_page(url: str, width: int = 1100, height: int = 900) -> Iterator[tuple[Any, list[str]]]:
    """A headless Chromium page opened at `url`, and the list its console errors and uncaught
    exceptions land in. Skips the test when Playwright is not installed."""
    import pytest

    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")
            yield page, errors
        finally:
            browser.close()
