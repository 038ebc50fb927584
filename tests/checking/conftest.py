"""Noisy datasets built from the real cats-owls photos (symbolic links in a temporary folder,
never copies in the repository), with known problems injected by `photoclass.sim.noise`, and
checked once per session."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

import photoclass
from photoclass.checking.findings import CheckResult
from photoclass.sim.noise import Injected, inject

from ..conftest import cats_owls_sample

# Real photos of a third kind, off-topic for cats vs owls.
EAGLES = ("owls-eagles", "train", "eagle")


class Checked(NamedTuple):
    root: Path
    truth: Injected
    result: CheckResult
    html: str


def found(result: CheckResult, kind: str) -> set[Path]:
    return {f.path for f in result.findings if f.kind == kind}


def eagles(shared_data: Path, n: int) -> list[Path]:
    folder = shared_data.parent.joinpath(*EAGLES)
    if not folder.is_dir():
        pytest.skip(f"no eagle photos at {folder}")
    return sorted(folder.iterdir())[:n]


@pytest.fixture(scope="session")
def noisy(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, Injected]:
    """100 train and 25 val photos per class, then: 5% of each class's labels flipped, 4 eagles
    and 4 drawings added at random places, 2% of the photos copied from train into val (half
    byte-identical, half re-encoded)."""
    root = cats_owls_sample(tmp_path_factory.mktemp("noisy"), {"train": 100, "val": 25}, seed=1)
    truth = inject(root, flip=0.05, strays=eagles(shared_data, 4), drawn=4, leak=0.02, seed=1)
    return root, truth


@pytest.fixture(scope="session")
def noisy_checked(noisy: tuple[Path, Injected], tmp_path_factory: pytest.TempPathFactory) -> Checked:
    root, truth = noisy
    report = tmp_path_factory.mktemp("check-report") / "check.html"
    result = photoclass.check(root, report_out=report, progress=False)
    return Checked(root, truth, result, report.read_text(encoding="utf-8"))
