"""Duplicates: the same bytes (SHA-256) or the same picture (pHash, `photoclass.collecting.dedup`)
twice, within a split (a photo weighing double in training) or across splits (leakage: a
model is graded on a photo it trained on, and its score is too good).

In each group of copies the photo of the earliest split (train, val, test), then the first by
path, is kept and every other one is a finding naming it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from photoclass.checking.findings import Finding, Kind
from photoclass.checking.layout import Photo
from photoclass.collecting.dedup import hamming, near_pairs, phash
from photoclass.config import CollectConfig
from photoclass.data.folder import SPLITS
from photoclass.progress import NO_PROGRESS, Progress

# pHash bits: at most `collect`'s own duplicate distance, the same picture re-encoded or
# resized (decoding alone moves up to 4 bits); up to NEAR_BITS, a crop, an edit or the next
# frame of a burst. On cats-owls every pair within 8 bits was one of those, and unrelated
# photos start to appear at 10.
SAME_BITS = CollectConfig.dedup_distance
NEAR_BITS = 8
CONFIDENCE = {"bytes": 1.0, "same": 0.95, "near": 0.75}

_RULE = (
    "the same bytes (SHA-256, confidence 1), the same picture re-encoded (pHash within "
    f"{SAME_BITS} of 64 bits, 0.95) or nearly the same (within {NEAR_BITS} bits, 0.75)"
)
KINDS = [
    Kind(
        "duplicate",
        "Duplicates",
        "duplicates",
        True,
        f"{_RULE} as another photo of the same split; the first by path is kept",
    ),
    Kind(
        "leakage",
        "Leakage between splits",
        "duplicates",
        True,
        f"{_RULE} as a photo of an earlier split (train, then val, then test); the copy in the later split is flagged",
    ),
]


def fingerprints(
    photos: list[Photo], images: np.ndarray, decoded: list[int], progress: Progress = NO_PROGRESS
) -> tuple[list[str], list[str | None]]:
    """The SHA-256 of every file, and the pHash of every decoded one (None for the others)."""
    hashes: list[str | None] = [None] * len(photos)
    with progress.task(f"hashing {len(photos)} files", len(photos)) as bar:
        sha = []
        for photo in photos:
            sha.append(hashlib.sha256(photo.path.read_bytes()).hexdigest())
            bar.advance()
        # The decoded photo is squashed to a square, and so is every copy of it: their
        # hashes agree as the originals' do.
        for pixels, i in zip(images, decoded, strict=True):
            hashes[i] = phash(Image.fromarray(np.asarray(pixels)))
    return sha, hashes


def duplicate_findings(
    root: Path, photos: list[Photo], sha: list[str], hashes: list[str | None]
) -> list[Finding]:
    """A finding for every copy after the first of each group of duplicates (`root` is the
    dataset folder, for naming the photo kept)."""
    parent = list(range(len(photos)))

    def leader(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    links = [(first.setdefault(digest, i), i) for i, digest in enumerate(sha)]
    hashed = [i for i, h in enumerate(hashes) if h is not None]
    links += [(hashed[a], hashed[b]) for a, b in near_pairs([hashes[i] for i in hashed], NEAR_BITS)]
    for a, b in links:
        parent[leader(a)] = leader(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(photos)):
        groups.setdefault(leader(i), []).append(i)

    findings = []
    for members in groups.values():
        members.sort(key=lambda i: (SPLITS.index(photos[i].split), str(photos[i].path)))
        for n, i in enumerate(members[1:], start=1):
            (_, how), match = min((_likeness(i, j, sha, hashes), j) for j in members[:n])
            findings.append(_finding(photos[i], photos[match], how, root))
    return findings


def _likeness(i: int, j: int, sha: list[str], hashes: list[str | None]) -> tuple[int, str]:
    """How alike two photos are: (rank, "bytes" | "same" | "near"), lower rank is closer."""
    if sha[i] == sha[j]:
        return -1, "bytes"
    a, b = hashes[i], hashes[j]
    bits = hamming(a, b) if a is not None and b is not None else 64
    return bits, "same" if bits <= SAME_BITS else "near"


def _finding(copy: Photo, kept: Photo, how: str, root: Path) -> Finding:
    alike = {
        "bytes": "the same file as",
        "same": "the same picture as",
        "near": "nearly the same picture as",
    }[how]
    name = kept.path.relative_to(root).as_posix()
    relabelled = f", labelled {kept.label} there and {copy.label} here" if kept.label != copy.label else ""
    if copy.split == kept.split:
        kind, action = "duplicate", f"quarantine this copy and keep {name}"
    elif kept.split == "train":
        kind = "leakage"
        action = (
            f"quarantine this {copy.split} copy: train/ holds the same photo, so scores on "
            f"{copy.split} include a photo the model trained on"
        )
    else:
        kind, action = (
            "leakage",
            f"quarantine this {copy.split} copy: {kept.split} and {copy.split} must not share photos",
        )
    return Finding(
        kind,
        copy.path,
        CONFIDENCE[how],
        action,
        f"{alike} {name}{relabelled}",
        split=copy.split,
        label=copy.label,
        other=kept.path,
    )
