"""Duplicate detection: sha256 for the same bytes, pHash for the same picture re-encoded."""

from __future__ import annotations

import io

from PIL import Image

from photoclass.collecting.dedup import Deduper, hamming, near_pairs, phash
from photoclass.sim.corpus import render_photo


def reencoded(image: Image.Image, quality: int, scale: float = 1.0) -> Image.Image:
    buffer = io.BytesIO()
    size = (round(image.width * scale), round(image.height * scale))
    image.resize(size).save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_phash_survives_reencoding_and_resizing_but_tells_photos_apart() -> None:
    photos = [render_photo("owl", i, 320, classes=("cat", "owl")) for i in range(12)]
    for photo in photos[:4]:
        assert hamming(phash(photo), phash(reencoded(photo, 60))) <= 4
        assert hamming(phash(photo), phash(reencoded(photo, 90, scale=0.6))) <= 4
    hashes = [phash(p) for p in photos]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > 10, "different photos of one class are far apart"


def test_deduper_flags_exact_and_near_copies_of_kept_photos() -> None:
    dedup = Deduper(max_distance=4)
    assert dedup.check("sha-a", "ffff0000ffff0000") is None
    dedup.add("sha-a", "ffff0000ffff0000")
    assert dedup.check("sha-a", "0123456789abcdef") == "duplicate"
    assert dedup.check("sha-b", "ffff0000ffff0007") == "near_duplicate"  # 3 bits apart
    assert dedup.check("sha-c", "ffff0000ffff00ff") is None  # 8 bits apart
    for i in range(200):  # growing past its first allocation keeps every hash
        dedup.add(f"s{i}", f"{i:016x}")
    assert dedup.check("sha-d", "ffff0000ffff0001") == "near_duplicate"


def test_near_pairs_finds_every_close_pair_once() -> None:
    hashes = ["0000000000000000", "0000000000000003", "ffffffffffffffff", "000000000000000f"]
    assert near_pairs(hashes, 2) == [(0, 1), (1, 3)]
    assert near_pairs(hashes, 4) == [(0, 1), (0, 3), (1, 3)]
