"""A `collect` killed (SIGKILL) at three points and rerun ends with the very dataset one
uninterrupted run makes, and no partial file anywhere."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from photoclass.collecting import collect
from photoclass.config import CollectConfig
from photoclass.sim import Faults, SimServer

from .conftest import assert_clean_dataset, dataset_state

KILLABLE = Path(__file__).with_name("killable.py")


def run(data: Path, config: CollectConfig, key: str, point: str) -> int:
    settings = json.dumps(dataclasses.asdict(config))
    command = [sys.executable, str(KILLABLE), str(data), settings, key, point]
    return subprocess.run(command, timeout=120, check=False).returncode


def test_killed_three_times_then_rerun_equals_one_uninterrupted_run(
    start_sim: Callable[..., SimServer], config_for: Callable[..., CollectConfig], tmp_path: Path
) -> None:
    faults = Faults(server_error=0.05, corrupt=0.05, duplicates=0.1)
    sim = start_sim(faults=faults, photos_per_class=60)
    config = config_for(sim, per_class=25, concurrency=4)
    once, killed = tmp_path / "once", tmp_path / "killed"
    collect(config, once, sim.api_key)

    assert run(killed, config, sim.api_key, "search") == -signal.SIGKILL
    assert not list(killed.rglob("*.jpg")) and (killed / "manifest.sqlite").exists()

    assert run(killed, config, sim.api_key, "download") == -signal.SIGKILL
    assert list(killed.rglob(".*.part")), "killed between writing a photo and renaming it"

    assert run(killed, config, sim.api_key, "split") == -signal.SIGKILL
    placed = [p for p in killed.rglob("*.jpg") if p.parts[-3] in ("train", "val", "test")]
    assert placed and list((killed / ".incoming").rglob("*.jpg")), "killed halfway through the split"

    assert run(killed, config, sim.api_key, "none") == 0
    assert dataset_state(killed) == dataset_state(once)
    assert_clean_dataset(killed)
    assert not list(killed.rglob("*.part"))
