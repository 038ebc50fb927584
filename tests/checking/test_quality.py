"""Image quality: real photos made dark, light, blurry, blank, a strip, tiny and grey are each
flagged with their kind, and nothing else is flagged that was not flagged before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from photoclass.checking import layout, quality
from photoclass.data.cache import decode_all

from ..conftest import cats_owls_sample


def _variants(photo: Path) -> dict[str, Image.Image]:
    img = Image.open(photo).convert("RGB")
    pixels = np.asarray(img, np.float32)
    rng = np.random.default_rng(0)
    flat = np.full((300, 400, 3), (30, 140, 160), np.float32) + rng.integers(0, 2, (300, 400, 3))
    return {
        "dark": Image.fromarray((pixels * 0.12).astype(np.uint8)),
        "light": Image.fromarray((255 - (255 - pixels) * 0.04).astype(np.uint8)),
        "blurry": img.filter(ImageFilter.GaussianBlur(12)),
        "low_information": Image.fromarray(flat.astype(np.uint8)),
        "odd_aspect_ratio": img.crop((0, 0, img.width, img.width // 5)),
        "odd_size": img.resize((40, 30)),
        "grayscale": img.convert("L"),
    }


def _quality(root: Path) -> dict[str, set[Path]]:
    inventory = layout.take_inventory(root)
    decoded = decode_all([p.path for p in inventory.photos], 224)
    sizes = [quality.header_size(p.path) for p in inventory.photos]
    measures = quality.measure(decoded.images, decoded.ok, sizes)
    flagged: dict[str, set[Path]] = {k.name: set() for k in quality.KINDS}
    for finding in quality.quality_findings(inventory.photos, measures):
        flagged[finding.kind].add(finding.path)
    return flagged


def test_each_quality_problem_is_found(tmp_path: Path, shared_data: Path) -> None:
    root = cats_owls_sample(tmp_path / "data", {"train": 30}, seed=2)
    before = _quality(root)
    injected: dict[str, Path] = {}
    for kind, image in _variants(sorted((root / "train" / "cat").iterdir())[0]).items():
        injected[kind] = root / "train" / "owl" / f"{kind}.jpg"
        image.save(injected[kind], quality=92)
    after = _quality(root)
    for kind in before:
        assert injected[kind] in after[kind], kind
        # Precision: whatever is new under this kind is an injected photo.
        assert after[kind] - before[kind] <= set(injected.values()), kind


def test_thresholds_are_stated_with_numbers() -> None:
    for kind in quality.KINDS:
        assert any(ch.isdigit() for ch in kind.rule), kind.name
        assert not kind.quarantine  # advice: a fix never moves a photo for its looks


@pytest.mark.parametrize(("size", "expected"), [((4000, 3000), (4000, 3000)), ((10, 10), (10, 10))])
def test_sizes_come_from_the_header(tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", size).save(path)
    assert quality.header_size(path) == expected
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert quality.header_size(tmp_path / "bad.jpg") is None
