"""Small constants shared by test modules."""

from pathlib import Path

# A model that really trains in seconds on the small fixture datasets.
TINY = dict(model="small-cnn", image_size=48, epochs=3, batch_size=16, workers=0)

# Headless Chromium for the browser tests (Debian's package; Playwright drives it).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
