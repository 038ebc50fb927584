"""Fixtures for the collect tests: Flickr simulators on loopback, configs aimed at them, and
checks of what a dataset folder holds."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from photoclass.config import CollectConfig
from photoclass.sim import SimServer


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimServer]]:
    """Start simulators (cat and owl, 200 photos each, unless told otherwise); all stop after."""
    started: list[SimServer] = []

    def start(**kwargs: object) -> SimServer:
        kwargs = {"classes": ("cat", "owl"), "photos_per_class": 200} | kwargs
        started.append(SimServer(**kwargs).start())  # type: ignore[arg-type]
        return started[-1]

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(start_sim: Callable[..., SimServer]) -> SimServer:
    return start_sim()


@pytest.fixture
def config_for() -> Callable[..., CollectConfig]:
    """A config aimed at a simulator: small photos, fast pacing and backoff, few per class."""

    def make(sim: SimServer, **overrides: object) -> CollectConfig:
        base = {
            "classes": ("cat", "owl"),
            "per_class": 30,
            "size": "s",
            "api_url": sim.api_url,
            "api_rate": 1000.0,
            "backoff": 0.01,
            "timeout": 5.0,
            "concurrency": 8,
        }
        return CollectConfig(**(base | overrides))  # type: ignore[arg-type]

    return make


def dataset_state(data: Path) -> tuple[dict[str, str], list[tuple]]:
    """Every file (relative path -> sha256) and every manifest row that should not depend
    on how the run went (attempt counts do)."""
    files = {
        str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.rglob("*"))
        if p.is_file() and p.suffix == ".jpg"
    }
    with sqlite3.connect(data / "manifest.sqlite") as db:
        rows = db.execute(
            "SELECT id, class, rank, status, error, split, sha256, phash FROM photos ORDER BY id"
        ).fetchall()
    return files, rows


def assert_clean_dataset(data: Path) -> None:
    """Only whole photos where the manifest says, plus the manifest and the attribution."""
    with sqlite3.connect(data / "manifest.sqlite") as db:
        kept = {
            f"{split}/{cls}/{pid}.jpg": sha
            for pid, cls, split, sha in db.execute(
                "SELECT id, class, split, sha256 FROM photos WHERE status = 'ok'"
            )
        }
    extra = {"manifest.sqlite", "ATTRIBUTION.csv"}
    files = {str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()}
    assert files == set(kept) | extra, "files on disk differ from the manifest's kept photos"
    for name, sha in kept.items():
        body = (data / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == sha
        with Image.open(data / name) as image:
            image.load()  # a full decode, not the downloader's draft
            assert image.format == "JPEG"
