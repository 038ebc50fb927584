"""Validation of each downloaded body: a whole JPEG of a sane size is kept with its hashes;
HTML pages, placeholders, truncated, corrupt, tiny and bomb images are refused with a reason."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from photoclass.collecting.validate import Checked, check_image, jpeg_size
from photoclass.sim.corpus import render_jpeg
from photoclass.sim.server import HTML_PAGE, _claim_size, _corrupt

JPEG = render_jpeg("cat", 1, 320)


def check(body: bytes, content_type: str = "image/jpeg") -> object:
    return check_image(body, content_type, min_side=64, max_pixels=40_000_000)


def test_a_whole_jpeg_passes_with_its_size_and_hashes() -> None:
    checked = check(JPEG)
    assert isinstance(checked, Checked)
    with Image.open(io.BytesIO(JPEG)) as image:
        assert (checked.width, checked.height) == image.size
    assert len(checked.sha256) == 64 and len(checked.phash) == 16


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", "image/jpeg", "empty"),
        (HTML_PAGE, "text/html; charset=utf-8", "html"),
        (HTML_PAGE, "image/jpeg", "html"),  # a CDN error page that claims to be a photo
        (JPEG[: len(JPEG) // 2], "image/jpeg", "truncated"),
        (_corrupt(JPEG, "7"), "image/jpeg", "corrupt"),
        (_claim_size(JPEG, 30000, 30000), "image/jpeg", "too_large"),
        (render_jpeg("cat", 1, 40), "image/jpeg", "too_small"),
        (JPEG[:2] + os.urandom(300), "image/jpeg", "not_jpeg"),
    ],
)
def test_bad_bodies_are_rejected_with_a_reason(body: bytes, content_type: str, reason: str) -> None:
    assert check(body, content_type) == reason


def test_png_placeholders_are_not_jpegs() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (500, 375), "grey").save(buffer, "PNG")
    assert check(buffer.getvalue(), "image/png") == "not_jpeg"


def test_jpeg_size_reads_baseline_and_progressive_headers() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (123, 45)).save(buffer, "JPEG", progressive=True)
    assert jpeg_size(buffer.getvalue()) == (123, 45)
    assert jpeg_size(JPEG) == Image.open(io.BytesIO(JPEG)).size
    assert jpeg_size(b"GIF89a") is None
