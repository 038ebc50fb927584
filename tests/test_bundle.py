"""Tamper-proof bundles: a hostile or damaged `photoclass.json` or `model.safetensors` is
refused with one line naming the field and the fix, before anything is built from it."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import photoclass
from photoclass.bundle import META, PRECISIONS, SCHEMA, VERSION, WEIGHTS, load_bundle, read_meta, save_bundle
from photoclass.cli import app
from photoclass.errors import BundleError
from photoclass.models import create_model


@pytest.fixture
def bundle_copy(trained_three: Path, tmp_path: Path) -> Path:
    """A really trained bundle (small-cnn, 3 classes, 48 px), copied so a test may damage it."""
    return Path(shutil.copytree(trained_three, tmp_path / "model"))


def edit_meta(folder: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    meta = json.loads((folder / META).read_text())
    change(meta)
    (folder / META).write_text(json.dumps(meta))


def refused(folder: Path) -> str:
    with pytest.raises(BundleError) as caught:
        load_bundle(folder)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_giant_image_size_is_one_line_before_any_photo_is_decoded(bundle_copy: Path, shapes3: Path) -> None:
    # Unchecked, prediction asks numpy for 10^9 x 10^9 x 3 bytes (2.6 EiB) and dies.
    edit_meta(bundle_copy, lambda m: m.update(image_size=10**9))
    with pytest.raises(
        BundleError, match=r'"image_size" is 1000000000, expected a whole number from 32 to 1024'
    ):
        photoclass.predict(bundle_copy, [shapes3 / "test"])


def test_the_cli_prints_the_one_line_unchanged(bundle_copy: Path, shapes3: Path) -> None:
    edit_meta(bundle_copy, lambda m: m.update(image_size=10**9))
    result = CliRunner().invoke(
        app, ["predict", str(bundle_copy), str(shapes3 / "test")], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 1
    assert '"image_size" is 1000000000, expected a whole number from 32 to 1024' in result.output
    assert "Traceback" not in result.output and "--image-size" not in result.output


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda meta: meta.__setitem__(field, value)


def _drop(field: str) -> Callable[[dict[str, Any]], Any]:
    return lambda meta: meta.pop(field)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set("format", "keras"), "\"format\" is 'keras', expected 'photoclass-bundle'"),
        (_set("version", "1"), "\"version\" is '1', expected a whole number from 1 to 1"),
        (_set("architecture", "resnet-9000"), "\"architecture\" is 'resnet-9000', expected one of: "),
        (_drop("architecture"), '"architecture" is missing'),
        (_set("classes", []), '"classes" has 0 items, expected a list of 2 to 10000 items'),
        (_set("classes", ["circle", "square", "circle"]), "\"classes[2]\" repeats 'circle'"),
        (_set("classes", ["circle", "", "x"]), "\"classes[1]\" is '', expected a string of 1 to 255"),
        (_set("classes", ["circle", 7, "x"]), '"classes[1]" is 7, expected a string'),
        (
            _set("classes", ["a", "b", "c" * 300]),
            '"classes[2]" has 300 characters, expected a string of 1 to 255',
        ),
        (_set("classes", [f"c{i}" for i in range(10_001)]), '"classes" has 10001 items'),
        (_set("image_size", 31), '"image_size" is 31, expected a whole number from 32 to 1024'),
        (_set("image_size", 48.0), '"image_size" is 48.0, expected a whole number'),
        (_set("image_size", True), '"image_size" is true, expected a whole number'),
        (_set("mean", [0.5, 0.5]), '"mean" has 2 items, expected a list of 3 items'),
        (_set("std", [0.2, 0.0, 0.2]), '"std[1]" is 0.0, expected a number > 0'),
        (_set("std", [0.2, float("nan"), 0.2]), '"std[1]" is nan, expected a number > 0'),
        (_set("mean", [0.5, float("inf"), 0.5]), '"mean[1]" is inf, expected a finite number'),
        (
            _set("precision", "fp8"),
            f"\"precision\" is 'fp8', expected one of: {', '.join(sorted(PRECISIONS))}",
        ),
        (_set("resize", "crop"), "\"resize\" is 'crop', expected one of: squash"),
        (_set("history", {"epoch": 1}), '"history" is an object, expected a list'),
        (_set("history", [{"phase": "train"}]), '"history[0].epoch" is missing'),
        (_set("best_epoch", 99), '"best_epoch" is 99, but "history" holds'),
        (
            _set("validation", {"accuracy": 3}),
            '"validation.accuracy" is 3, expected a finite number from 0 to 1',
        ),
        (_set("skipped", [{"path": "x.jpg"}]), '"skipped[0].reason" is missing'),
        (_set("versions", {"torch": 2}), '"versions.torch" is 2, expected a string'),
    ],
)
def test_each_field_is_checked_and_named(bundle_copy: Path, change: Callable, expected: str) -> None:
    edit_meta(bundle_copy, change)
    message = refused(bundle_copy)
    assert expected in message
    assert message.startswith(str(bundle_copy / META)) and "; " in message  # the fix follows


def test_a_bundle_from_a_newer_photoclass_says_upgrade(bundle_copy: Path) -> None:
    # A newer writer may add architectures and fields: the version is judged first.
    edit_meta(bundle_copy, lambda m: m.update(version=VERSION + 1, architecture="vit-2030"))
    assert f"newer photoclass (bundle version {VERSION + 1}" in refused(bundle_copy)
    assert refused(bundle_copy).endswith("upgrade photoclass")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "is not valid JSON"),
        ("[1, 2]", "holds no JSON object"),
        ('{"image_size": ' + "9" * 5000 + "}", "is not valid JSON"),  # Python refuses huge ints
        ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),  # RecursionError
        (b'{"classes": "\xff"}', "is not valid JSON"),
    ],
)
def test_unparseable_descriptions(bundle_copy: Path, text: str | bytes, expected: str) -> None:
    path = bundle_copy / META
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert expected in refused(bundle_copy)


def test_an_oversized_description_is_not_read(bundle_copy: Path) -> None:
    with open(bundle_copy / META, "r+b") as f:
        f.truncate(2**30)  # sparse: a gigabyte that costs no disk
    assert "more than a bundle description can need" in refused(bundle_copy)


def test_old_bundles_without_later_fields_still_load(bundle_copy: Path) -> None:
    """Only what the first bundles had: no precision, summary, history, versions ..."""
    first = ("format", "version", "architecture", "classes", "image_size", "mean", "std")
    edit_meta(bundle_copy, lambda m: [m.pop(k) for k in list(m) if k not in first])
    bundle = load_bundle(bundle_copy)
    assert bundle.precision == "fp32" and bundle.classes == ["circle", "square", "triangle"]
    assert [f for f, spec in SCHEMA.items() if spec.required] == list(first)


def test_weights_that_do_not_fit_the_description(bundle_copy: Path) -> None:
    edit_meta(bundle_copy, lambda m: m.update(classes=["a", "b", "c", "d"]))
    message = refused(bundle_copy)
    assert 'model.safetensors: tensor "' in message and "is F32 [3, " in message
    assert "needs F32 [4, " in message and "do not match photoclass.json" in message

    edit_meta(bundle_copy, lambda m: m.update(classes=["a", "b", "c"], architecture="efficientnet-lite0"))
    assert "lacks tensor" in refused(bundle_copy)


def test_oversized_or_broken_weights(bundle_copy: Path) -> None:
    weights = bundle_copy / WEIGHTS
    good = weights.read_bytes()
    with open(weights, "r+b") as f:
        f.truncate(2**34)  # 16 GiB, sparse
    assert "far more than the" in refused(bundle_copy)
    weights.write_bytes(good[: len(good) // 2])
    assert "is not a readable safetensors file" in refused(bundle_copy)
    weights.unlink()
    weights.mkdir()
    assert "is missing or not a file" in refused(bundle_copy)


PEAK_RSS = """
import resource, sys
from pathlib import Path
from photoclass.bundle import load_bundle
from photoclass.errors import BundleError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_bundle(Path(sys.argv[1]))
except BundleError as e:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, e)
"""


def test_shapes_are_compared_before_the_network_is_built(tmp_path: Path) -> None:
    """A 64 px seed-cnn's weights, described as 1024 px: building that network would
    allocate and initialise a 130M-weight dense layer (520 MB) before finding out."""
    model = create_model("seed-cnn", 2, 64, pretrained=False)
    meta = {"architecture": "seed-cnn", "classes": ["a", "b"], "image_size": 64}
    save_bundle(tmp_path, model, {**meta, "mean": [0, 0, 0], "std": [1, 1, 1]})
    load_bundle(tmp_path)  # as written, it loads
    edit_meta(tmp_path, lambda m: m.update(image_size=1024))
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(tmp_path)], capture_output=True, text=True, check=True
    )
    grown_kib, message = done.stdout.split(" ", 1)
    assert 'tensor "' in message and "needs F32 [64, 2032128]" in message
    assert int(grown_kib) < 100 * 1024, f"peak memory grew by {int(grown_kib) // 1024} MiB"


class _Trap:
    """Unpickled, this creates the file `marker`: proof that a pickle was opened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "model.pkl", "last.ckpt"])
def test_a_pickled_model_is_refused_unopened(bundle_copy: Path, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pickle-was-opened"
    (bundle_copy / WEIGHTS).unlink()
    (bundle_copy / name).write_bytes(pickle.dumps(_Trap(marker)))
    message = refused(bundle_copy)
    assert f"holds a pickled model ({name})" in message and "never opens" in message
    (bundle_copy / META).unlink()  # a folder with nothing but the pickle
    assert "holds a pickled model" in refused(bundle_copy)
    assert not marker.exists()


def test_a_valid_bundle_reads_as_before(trained_three: Path) -> None:
    meta = read_meta(trained_three)
    bundle = load_bundle(trained_three)
    assert bundle.meta == meta and bundle.image_size == 48
    assert photoclass.predict(bundle, []) == []
    assert np.isfinite(list(bundle.normalize.std)).all()
