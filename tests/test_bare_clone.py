"""A clone without ../shared passes: a test needing the real photos is skipped with one reason
line, the run ends with the count, and PHOTOCLASS_REQUIRE_SHARED=1 (what CI sets) turns the
skip into a failure. The first two tests are what the nested runs below run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, SHARED_DATA


def test_the_shared_data_fixture_holds_the_real_photos(shared_data: Path) -> None:
    assert sorted((shared_data / "val" / "cat").iterdir())


def test_reading_the_real_photos_directly() -> None:
    assert sorted((SHARED_DATA / "train" / "owl").iterdir())


def run_here(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """This module's first two tests in a fresh pytest, with ../shared somewhere empty."""
    names = "test_the_shared_data_fixture_holds_the_real_photos or test_reading_the_real_photos_directly"
    command = [sys.executable, "-m", "pytest", __file__, "-k", names, "-p", "no:cacheprovider", "-q"]
    environment = {**os.environ, "PHOTOCLASS_SHARED": str(tmp_path / "shared")}
    environment.pop("PHOTOCLASS_REQUIRE_SHARED", None)  # set when CI runs this very test
    environment.update(env)
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def test_without_the_real_photos_those_tests_are_skipped_and_counted(tmp_path: Path) -> None:
    result = run_here(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(reasons) <= 2 and all("skipped: real photos not found at" in line for line in reasons)
    assert "2 tests skipped for missing real photos" in result.stdout
    assert "Traceback" not in result.stdout and "FileNotFoundError" not in result.stdout


def test_ci_turns_the_skip_into_a_failure(tmp_path: Path) -> None:
    result = run_here(tmp_path, PHOTOCLASS_REQUIRE_SHARED="1")
    assert result.returncode == 1
    assert "1 failed" in result.stdout and "1 error" in result.stdout  # the fixture errs, the read fails
    assert result.stdout.count("PHOTOCLASS_REQUIRE_SHARED=1 but real photos not found") == 2
