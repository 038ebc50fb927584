"""A clone without ../shared passes: a test needing the real photos is skipped with one reason
line, the run ends with the count, and PHOTOCLASS_REQUIRE_SHARED=1 (what CI sets) turns the
skip into a failure. The first three tests are what the nested runs below run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from .conftest import REPO, SHARED_DATA, cats_owls_sample


def test_the_shared_data_fixture_holds_the_real_photos(shared_data: Path) -> None:
    assert sorted((shared_data / "val" / "cat").iterdir())


def test_reading_the_real_photos_directly() -> None:
    assert sorted((SHARED_DATA / "train" / "owl").iterdir())


def test_a_sample_is_drawn_without_the_real_photos(tmp_path: Path) -> None:
    sample = cats_owls_sample(tmp_path, {"train": 3, "val": 2})
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "owl"):
            photos = sorted((sample / split / cls).iterdir())
            assert len(photos) == n and all(Image.open(p).format == "JPEG" for p in photos)


def run_here(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """This module's first three tests in a fresh pytest, with ../shared somewhere empty."""
    names = "holds_the_real_photos or reading_the_real_photos_directly or sample_is_drawn"
    command = [sys.executable, "-m", "pytest", __file__, "-k", names, "-p", "no:cacheprovider", "-q"]
    environment = {**os.environ, "PHOTOCLASS_SHARED": str(tmp_path / "shared")}
    # CI sets these when it runs this very test; CI and BUILD_NUMBER also make pytest print
    # the summary untruncated, which would change the counts below.
    for name in ("PHOTOCLASS_REQUIRE_SHARED", "CI", "BUILD_NUMBER", "PYTEST_ADDOPTS"):
        environment.pop(name, None)
    environment.update(env)
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def test_without_the_real_photos_those_tests_are_skipped_and_counted(tmp_path: Path) -> None:
    result = run_here(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(reasons) <= 2 and all("skipped: real photos not found at" in line for line in reasons)
    assert "1 passed, 2 skipped" in result.stdout, "the sample was drawn, the others skipped"
    assert "2 tests skipped for missing real photos" in result.stdout
    assert "Traceback" not in result.stdout and "FileNotFoundError" not in result.stdout


def test_ci_turns_the_skip_into_a_failure(tmp_path: Path) -> None:
    result = run_here(tmp_path, PHOTOCLASS_REQUIRE_SHARED="1")
    assert result.returncode == 1
    assert "2 failed" in result.stdout and "1 error" in result.stdout  # the fixture errs, the rest fail
    assert result.stdout.count("PHOTOCLASS_REQUIRE_SHARED=1 but real photos not found") == 3
