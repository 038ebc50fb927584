""" "None of these": the kNN distance, the unknown flag on photos of a third kind, and bundles
made before the flag (and calibration) existed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import photoclass
from photoclass.bundle import load_bundle
from photoclass.errors import BundleError
from photoclass.prediction.novelty import FILE, fit_novelty, knn_distance, l2_normalize

from .conftest import SHARED_DATA, cats_owls_sample, require_real_photos, shape_image


def test_knn_distance_is_the_distance_to_the_kth_nearest_reference() -> None:
    reference = l2_normalize(np.eye(3))
    query = l2_normalize(np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    assert knn_distance(reference, query, k=1) == pytest.approx([0.0, np.sqrt(2 - np.sqrt(2))], abs=1e-6)
    assert knn_distance(reference, query, k=2) == pytest.approx(
        [np.sqrt(2), np.sqrt(2 - np.sqrt(2))], abs=1e-6
    )
    assert knn_distance(reference, query, k=99)[0] == pytest.approx(np.sqrt(2))  # k capped at the reference


def test_the_threshold_flags_the_asked_share_of_validation_photos() -> None:
    rng = np.random.default_rng(0)
    centre = np.eye(16)[0] * 4  # the training photos' features point one way ...
    train, val = rng.normal(size=(400, 16)) + centre, rng.normal(size=(200, 16)) + centre
    novelty = fit_novelty(train, np.repeat([0, 1], 200), val, rate=0.1, keep=100)
    assert novelty.reference.shape == (100, 16)  # float16 values (as the bundle keeps them), held as float32
    assert np.array_equal(novelty.reference, novelty.reference.astype(np.float16).astype(np.float32))
    assert novelty.unknown(val).mean() == pytest.approx(0.1, abs=0.01)
    assert novelty.unknown(rng.normal(size=(50, 16)) - centre).all()  # ... strangers' the other


@pytest.fixture(scope="module")
def lite0_cats_owls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """efficientnet-lite0's default recipe on 40 + 20 real photos per class, and 20 more per class."""
    data = cats_owls_sample(tmp_path_factory.mktemp("co"), {"train": 40, "val": 20, "test": 20}, seed=1)
    out = tmp_path_factory.mktemp("models") / "lite0"
    photoclass.train(data, out, workers=0, progress=False)
    return out, data


def third_kind(folder: Path) -> Path:
    """30 eagles (from the owls-eagles photos) and 30 drawn shapes: neither a cat nor an owl.
    Eagles are birds, as owls are: about 70% of them are flagged by a model trained on all of
    cats-owls, so at least half must be here; shapes are nothing like either."""
    eagles = sorted((SHARED_DATA.parent / "owls-eagles" / "train" / "eagle").iterdir())[:30]
    (folder / "eagles").mkdir(parents=True)
    for photo in eagles:
        shutil.copyfile(photo, folder / "eagles" / photo.name)
    (folder / "shapes").mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        shape_image(("circle", "square", "triangle")[i % 3], rng, size=224).save(
            folder / "shapes" / f"{i}.jpg"
        )
    return folder


@pytest.mark.slow
def test_photos_of_a_third_kind_are_flagged_and_the_classes_are_not(
    lite0_cats_owls: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = lite0_cats_owls
    meta = json.loads((model / "photoclass.json").read_text())
    assert meta["novelty"]["rate"] == 0.05 and (model / FILE).is_file()
    strangers = photoclass.predict(model, [third_kind(tmp_path / "third")])
    ours = photoclass.predict(model, [data / "test"])
    for group, limit in (("eagles", 0.5), ("shapes", 0.9)):
        flags = [p.unknown for p in strangers if f"/{group}/" in p.path]
        assert len(flags) == 30 and np.mean(flags) >= limit, (group, np.mean(flags))
    assert np.mean([p.unknown for p in ours]) <= 0.15
    # Rejected: no label, but the guesses stay.
    rejected = photoclass.predict(model, [tmp_path / "third" / "shapes"], reject_unknown=True)
    assert all(p.label is None and p.probability is None and p.top for p in rejected if p.unknown)
    # evaluate counts them, and with reject_unknown leaves them out.
    evaluation = photoclass.evaluate(model, data / "test", reject_unknown=True, progress=False)
    flagged = evaluation.metrics["unknown"]["flagged"]
    assert evaluation.metrics["n"] == 40 - flagged and evaluation.metrics["unknown"]["rejected"]


@pytest.mark.slow
def test_the_prior_and_calibration_are_recorded(lite0_cats_owls: tuple[Path, Path]) -> None:
    require_real_photos()  # ImageNet's cat and owl classes help on real photos, not on drawn stand-ins
    meta = json.loads((lite0_cats_owls[0] / "photoclass.json").read_text())
    assert meta["prior"]["matched"].startswith(
        "cat = tabby, tiger cat, Persian cat (+2); owl = great grey owl"
    )
    assert meta["prior"]["weight"] == meta["config"]["prior"] > 0
    assert 0 < meta["temperature"] < 100 and 0 <= meta["validation"]["ece"] < 0.2


def test_bundles_without_the_new_fields_still_load(
    trained_binary: Path, cats_owls_tiny: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(trained_binary, old)
    meta = json.loads((old / "photoclass.json").read_text())
    for key in ("temperature", "prior", "novelty"):
        meta.pop(key)
    (old / "photoclass.json").write_text(json.dumps(meta))
    (old / FILE).unlink()
    bundle = load_bundle(old)
    assert bundle.temperature == 1.0 and bundle.novelty is None
    predictions = photoclass.predict(old, [cats_owls_tiny / "val"], reject_unknown=True)
    assert all(p.unknown is None and p.label is not None for p in predictions)
    evaluation = photoclass.evaluate(
        old, cats_owls_tiny / "val", report_out=tmp_path / "r.html", progress=False
    )
    assert "unknown" not in evaluation.metrics
    assert "predates calibration" in (tmp_path / "r.html").read_text()


def test_a_bundle_missing_its_novelty_file_says_so(trained_binary: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained_binary, broken)
    (broken / FILE).unlink()
    with pytest.raises(BundleError, match="novelty.safetensors"):
        load_bundle(broken)
