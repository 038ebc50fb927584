"""Duplicate photos: the same bytes (sha256) or the same picture re-encoded (perceptual hash).

The perceptual hash is pHash: the 8 x 8 lowest frequencies of the DCT of a 32 x 32 grey
thumbnail, each compared with their median. Re-encoding, resizing or light noise flip few of
its 64 bits; unrelated photos differ in about half of them.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

_SIDE = 32
# Orthonormal DCT-II matrix: `_DCT @ x @ _DCT.T` is the 2-D DCT of a 32 x 32 block.
_DCT = np.array(
    [
        [
            math.sqrt((1 if k == 0 else 2) / _SIDE) * math.cos(math.pi * (2 * n + 1) * k / (2 * _SIDE))
            for n in range(_SIDE)
        ]
        for k in range(_SIDE)
    ],
    np.float32,
)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def phash(image: Image.Image) -> str:
    """The 64-bit perceptual hash of an image, as 16 hex digits."""
    grey = np.asarray(image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BOX), np.float32)
    low = (_DCT @ grey @ _DCT.T)[:8, :8]
    return np.packbits(low > np.median(low)).tobytes().hex()


def _as_int(phash_hex: str) -> int:
    return int(phash_hex, 16)


def distances(hashes: np.ndarray, one: int) -> np.ndarray:
    """Hamming distances between one 64-bit hash and an array of them (uint64)."""
    xor = np.bitwise_xor(hashes, np.uint64(one))
    return _POPCOUNT[xor.view(np.uint8)].reshape(-1, 8).sum(axis=1)


def hamming(a: str, b: str) -> int:
    return (_as_int(a) ^ _as_int(b)).bit_count()


class Deduper:
    """The photos kept so far; `check` says whether a new one repeats any of them."""

    def __init__(self, max_distance: int) -> None:
        self.max_distance = max_distance
        self._sha: set[str] = set()
        self._hashes = np.zeros(64, np.uint64)
        self._count = 0

    def check(self, sha256: str, phash_hex: str) -> str | None:
        """None for a new photo, else why it is a duplicate."""
        if sha256 in self._sha:
            return "duplicate"
        if (
            self._count
            and distances(self._hashes[: self._count], _as_int(phash_hex)).min() <= self.max_distance
        ):
            return "near_duplicate"
        return None

    def add(self, sha256: str, phash_hex: str) -> None:
        if self._count == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
        self._sha.add(sha256)
        self._hashes[self._count] = _as_int(phash_hex)
        self._count += 1


def near_pairs(hashes: list[str], max_distance: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) of hashes at most `max_distance` bits apart."""
    values = np.array([_as_int(h) for h in hashes], np.uint64)
    pairs = []
    for i in range(len(values) - 1):
        close = np.nonzero(distances(values[i + 1 :], int(values[i])) <= max_distance)[0]
        pairs += [(i, i + 1 + int(j)) for j in close]
    return pairs
