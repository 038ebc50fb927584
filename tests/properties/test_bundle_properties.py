"""The bundle validator, for any damage: a really trained bundle whose `photoclass.json` (fields
replaced, removed or nested values changed; or its text spliced) or `model.safetensors` (bytes
overwritten, cut or added) was tampered with either loads and predicts, or is refused with a
one-line `BundleError`; never another exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from photoclass.bundle import META, SCHEMA, WEIGHTS, load_bundle, save_bundle
from photoclass.errors import BundleError
from photoclass.models import create_model, list_models
from photoclass.prediction.predict import predict_pixels

from .conftest import examples

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.sampled_from([0, 1, 2, 3, 31, 32, 33, 64, 1023, 1024, 1025, 10**9, -1, 2**63]),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from([*list_models(), "fp32", "bf16", "squash", "photoclass-bundle", "x" * 300]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
fields = st.sampled_from(sorted(SCHEMA)) | st.text(max_size=10)


@st.composite
def damaged(draw: st.DrawFn, meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` with one to three fields (or values inside them) replaced or removed."""
    meta = copy.deepcopy(meta)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(fields)
        target: Any = meta
        # Step into nested lists and objects now and then, to damage a value inside a field.
        while isinstance(target.get(key) if isinstance(target, dict) else None, (dict, list)) and draw(
            st.booleans()
        ):
            inner = target[key]
            if not inner:
                break
            target, key = (
                inner,
                draw(st.sampled_from(list(inner) if isinstance(inner, dict) else range(len(inner)))),
            )
        if isinstance(target, dict) and draw(st.integers(0, 4)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return meta


EPOCH = {"phase": "train", "epoch": 1, "train_loss": 0.7, "train_acc": 0.5, "val_loss": 0.69, "val_acc": 0.5}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    """A bundle as `train` writes one (every field filled), of an untrained small-cnn: the
    validator judges the files, not how well the weights were learned."""
    folder = tmp_path_factory.mktemp("tampered") / "model"
    meta = {
        "architecture": "small-cnn",
        "summary": "a small CNN",
        "classes": ["circle", "square", "triangle"],
        "image_size": 48,
        "resize": "squash",
        "precision": "fp32",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "config": {"model": "small-cnn", "epochs": 2},
        "data": {"root": "/data/shapes", "train": 90, "val": 30, "val_source": "val/"},
        "history": [EPOCH, {**EPOCH, "epoch": 2, "lr": 0.001, "seconds": 1.5}],
        "best_epoch": 1,
        "stopped_early": False,
        "validation": {"accuracy": 0.5, "accuracy_ci95": [0.3, 0.7], "n": 30, "loss": 0.69},
        "skipped": [{"path": "/data/shapes/train/circle/x.jpg", "reason": "not an image"}],
        "train_seconds": 3.0,
    }
    save_bundle(folder, create_model("small-cnn", 3, 48, pretrained=False), meta)
    load_bundle(folder)  # as written, it loads
    return folder, (folder / META).read_bytes(), (folder / WEIGHTS).read_bytes()


def loads_or_refuses(folder: Path) -> None:
    try:
        bundle = load_bundle(folder)
    except BundleError as e:
        message = str(e)
        assert message and "\n" not in message and "Traceback" not in message
        event("refused")
        return
    event("loaded")
    size = bundle.image_size
    # Accepted: it predicts (weights damaged within their bytes may well predict nonsense).
    top = predict_pixels(bundle, np.zeros((1, size, size, 3), np.uint8), top_k=len(bundle.classes))[0].top
    assert sorted(label for label, _ in top) == sorted(bundle.classes)


@settings(max_examples=examples(30))
@given(data=st.data())
def test_any_damage_to_the_description_loads_or_is_refused(pristine: tuple[Path, bytes, bytes], data) -> None:
    folder, meta_bytes, weights = pristine
    meta = data.draw(damaged(json.loads(meta_bytes)))
    (folder / META).write_text(json.dumps(meta))
    try:
        loads_or_refuses(folder)
    finally:
        (folder / META).write_bytes(meta_bytes)


@settings(max_examples=examples(40))
@given(at=st.integers(0, 400), cut=st.integers(0, 40), splice=st.text(max_size=30))
def test_any_edit_of_the_description_text_loads_or_is_refused(
    pristine: tuple[Path, bytes, bytes], at: int, cut: int, splice: str
) -> None:
    folder, meta_bytes, _ = pristine
    text = meta_bytes.decode()
    (folder / META).write_bytes((text[:at] + splice + text[at + cut :]).encode("utf-8", "surrogatepass"))
    try:
        loads_or_refuses(folder)
    finally:
        (folder / META).write_bytes(meta_bytes)


@settings(max_examples=examples(30))
@given(
    at=st.integers(0, 600) | st.integers(0, 10**7),  # mostly the header; anywhere, too
    patch=st.binary(min_size=1, max_size=16),
    end=st.none() | st.none() | st.integers(0, 2000),
    tail=st.just(b"") | st.binary(max_size=64),
)
def test_any_damage_to_the_weights_loads_or_is_refused(
    pristine: tuple[Path, bytes, bytes], at: int, patch: bytes, end: int | None, tail: bytes
) -> None:
    """Bytes overwritten (in the header: its length and JSON; or in the tensors), the file cut
    short, junk appended."""
    folder, _, weights = pristine
    at %= len(weights)
    damaged_weights = weights[:at] + patch + weights[at + len(patch) :]
    if end is not None:
        damaged_weights = damaged_weights[: len(damaged_weights) - end]
    (folder / WEIGHTS).write_bytes(damaged_weights + tail)
    try:
        loads_or_refuses(folder)
    finally:
        (folder / WEIGHTS).write_bytes(weights)
