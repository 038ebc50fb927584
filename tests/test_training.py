"""Real training on small data: three classes, repeatability, bundles, bad photos, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import photoclass
from photoclass.bundle import load_bundle
from photoclass.errors import BundleError, ConfigError
from photoclass.runtime import auto_precision
from photoclass.training.checkpoint import NAME as CHECKPOINT
from photoclass.training.checkpoint import load_checkpoint

from .helpers import TINY


def test_three_classes_learn_and_use_softmax(trained_three: Path, shapes3: Path) -> None:
    bundle = load_bundle(trained_three)
    assert bundle.classes == ["circle", "square", "triangle"]
    assert bundle.model.get_classifier()[0].out_features == 3
    evaluation = photoclass.evaluate(trained_three, shapes3 / "test", progress=False)
    assert evaluation.metrics["n"] == 30
    assert evaluation.accuracy >= 0.6  # chance is 1/3 (18/30 in fp32, as on CPUs without AMX)
    assert np.allclose(evaluation.probs.sum(axis=1), 1.0, atol=1e-5)
    assert "roc_auc" not in evaluation.metrics


def test_bundle_round_trip_without_pickle(trained_binary: Path, cats_owls_tiny: Path) -> None:
    meta = json.loads((trained_binary / "photoclass.json").read_text())
    assert meta["architecture"] == "small-cnn" and meta["classes"] == ["cat", "owl"]
    assert meta["image_size"] == 48 and meta["mean"] == [0.485, 0.456, 0.406]
    assert meta["config"]["epochs"] == 3 and len(meta["history"]) == 3
    assert {"torch", "torchvision", "numpy", "pillow"} <= set(meta["versions"])
    assert meta["precision"] == auto_precision(torch.device("cpu"), ("amx",))  # small-cnn's recipe: auto
    assert meta["validation"]["n"] == 20 and meta["data"]["val_source"] == "val/"
    # The weights file is safetensors: an 8-byte header length, then a JSON header.
    raw = (trained_binary / "model.safetensors").read_bytes()
    assert raw[8:9] == b"{" and b"pickle" not in raw[:200]
    assert set(load_file(trained_binary / "model.safetensors")) == set(
        load_bundle(trained_binary).model.state_dict()
    )
    # Reloaded, it predicts exactly what the training run measured on val/.
    again = photoclass.evaluate(trained_binary, cats_owls_tiny / "val", progress=False)
    assert again.metrics["confusion_matrix"] == meta["validation"]["confusion_matrix"]
    assert again.metrics["loss"] == pytest.approx(meta["validation"]["loss"], abs=1e-5)


def test_same_seed_same_model(shapes3: Path, tmp_path: Path) -> None:
    options = {**TINY, "epochs": 2, "workers": 2}
    runs = [
        photoclass.train(shapes3, tmp_path / f"m{i}", progress=False, seed=7, **options) for i in range(2)
    ]
    other = photoclass.train(shapes3, tmp_path / "m-other", progress=False, seed=8, **options)
    assert runs[0].metrics == runs[1].metrics
    assert _same_but_time(runs[0].meta, runs[1].meta)
    weights = [load_file(tmp_path / f"m{i}" / "model.safetensors") for i in range(2)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not _same_but_time(runs[0].meta, other.meta)


def test_trained_on_smaller_photos_it_predicts_at_its_image_size(shapes3: Path, tmp_path: Path) -> None:
    """`train_size_ratio`: 24 px crops in training, 48 px photos in validation and prediction."""
    run = photoclass.train(
        shapes3, tmp_path / "m", progress=False, **{**TINY, "epochs": 8}, train_size_ratio=0.5
    )
    assert run.meta["image_size"] == 48 and run.meta["config"]["train_size_ratio"] == 0.5
    evaluation = photoclass.evaluate(tmp_path / "m", shapes3 / "val", progress=False)
    assert evaluation.metrics["confusion_matrix"] == run.metrics["confusion_matrix"]
    assert evaluation.accuracy >= 0.6  # chance is 1/3


def _same_but_time(a: dict, b: dict) -> bool:
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    return strip(a["history"]) == strip(b["history"])


def test_unreadable_photos_are_skipped_and_listed(shapes3: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(shapes3, data)
    (data / "train" / "circle" / "page.jpg").write_text("<html>Not Found</html>")
    good = (data / "train" / "square" / "square-0.jpg").read_bytes()
    (data / "train" / "square" / "cut.jpg").write_bytes(good[: len(good) // 3])
    result = photoclass.train(data, tmp_path / "m", progress=False, **{**TINY, "epochs": 1})
    reasons = {Path(s["path"]).name: s["reason"] for s in result.meta["skipped"]}
    assert reasons == {
        "page.jpg": "not an image (unrecognised format)",
        "cut.jpg": "truncated image (file ends early)",
    }
    assert result.meta["data"]["train"] == 90


def test_without_val_a_stratified_split_is_held_out(cats_owls_tiny: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(cats_owls_tiny / "train", data / "train", symlinks=True)
    result = photoclass.train(
        data, tmp_path / "m", progress=False, val_fraction=0.25, **{**TINY, "epochs": 1}
    )
    assert result.meta["data"] == {**result.meta["data"], "train": 30, "val": 10}
    assert result.metrics["per_class"]["cat"]["support"] == 5
    assert "25% of train/" in result.meta["data"]["val_source"]


def test_existing_output_is_never_silently_replaced(
    trained_binary: Path, cats_owls_tiny: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="already holds a trained model"):
        photoclass.train(cats_owls_tiny, trained_binary, progress=False, **TINY)
    with pytest.raises(BundleError, match="is not a photoclass model"):
        photoclass.load_model(tmp_path)


def _train_command(data: Path, out: Path, *extra: str) -> list[str]:
    args = [
        "--model",
        "small-cnn",
        "--image-size",
        "48",
        "--epochs",
        "6",
        "--batch-size",
        "8",
        "--workers",
        "0",
    ]
    return [sys.executable, "-m", "photoclass", "train", str(data), "--out", str(out), *args, *extra]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PHOTOCLASS_CACHE": str(tmp_path / "cache"), "COLUMNS": "120"}


def test_kill_and_resume_gives_the_uninterrupted_result(shapes3: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run(_train_command(shapes3, tmp_path / "straight"), env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    for finished_epochs in (1, 4):  # kill twice: early, and late in the run
        resume = ("--resume",) if (killed / CHECKPOINT).exists() else ()
        proc = subprocess.Popen(
            _train_command(shapes3, killed, *resume),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (killed / CHECKPOINT).exists() and _epochs_done(killed) >= finished_epochs:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (killed / "photoclass.json").exists()
    result = subprocess.run(
        _train_command(shapes3, killed, "--resume"), env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    straight = json.loads((tmp_path / "straight" / "photoclass.json").read_text())
    resumed = json.loads((killed / "photoclass.json").read_text())
    assert _same_but_time(straight, resumed)
    assert straight["validation"] == resumed["validation"]
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (killed / CHECKPOINT).exists()
    assert not list(killed.glob(".*.part"))


def _epochs_done(folder: Path) -> int:
    try:
        return load_checkpoint(folder / CHECKPOINT).state.epoch
    except Exception:  # caught mid-rename: try again
        return 0


def test_resume_with_other_options_is_refused(shapes3: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    out = tmp_path / "m"
    proc = subprocess.Popen(
        _train_command(shapes3, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = subprocess.run(
        _train_command(shapes3, out, "--resume", "--lr", "0.5"), env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "made with other options or data" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(_train_command(shapes3, out), env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "pass --resume" in result.stderr
