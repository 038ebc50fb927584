"""Arithmetic that makes training faster without changing what is computed: pooling before
ReLU in seed-cnn, bf16 mixed precision, and the shared uint8 -> float preprocessing."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import photoclass
from photoclass.bundle import load_bundle
from photoclass.config import TrainConfig
from photoclass.data.preprocess import Normalize
from photoclass.models import create_model, get_model_entry
from photoclass.runtime import native_bf16


def test_pooling_before_relu_is_the_reference_function() -> None:
    torch.manual_seed(0)
    fast = create_model("seed-cnn", 2, 64).eval()
    reference = copy.deepcopy(fast)
    for i in (0, 3, 6):  # the tutorial's Conv-ReLU-MaxPool order
        assert isinstance(fast[i + 1], nn.MaxPool2d) and isinstance(fast[i + 2], nn.ReLU)
        reference[i + 1], reference[i + 2] = nn.ReLU(), nn.MaxPool2d(2)
    x = torch.randn(4, 3, 64, 64)
    out_fast, out_ref = fast(x), reference(x)
    assert torch.equal(out_fast, out_ref)
    out_fast.sum().backward()
    out_ref.sum().backward()
    for (name, a), b in zip(fast.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name


def test_the_dense_layer_stays_float32_under_autocast() -> None:
    model = create_model("seed-cnn", 2, 64).eval()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        x = model.forward_features(torch.rand(2, 3, 64, 64))
        assert x.dtype == torch.bfloat16  # the convolutions ran in bf16
        dense = next(m for m in model.modules() if isinstance(m, nn.Linear))
        assert dense(x.flatten(1)).dtype == torch.float32


def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = get_model_entry("seed-cnn").recipe
    assert recipe["precision"] == "auto"
    seed = get_model_entry("seed-cnn")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr("photoclass.runtime.native_bf16", lambda native=native: native)
        assert seed.resolve(TrainConfig(model="seed-cnn", device="cpu")).precision == expected
    assert seed.resolve(TrainConfig(model="seed-cnn", precision="fp32")).precision == "fp32"
    monkeypatch.setattr("photoclass.runtime.native_bf16", lambda: True)
    lite0 = get_model_entry("efficientnet-lite0")  # bf16 measured no faster for it on a CPU
    assert lite0.resolve(TrainConfig(model="efficientnet-lite0", device="cpu")).precision == "fp32"


def test_a_bf16_model_predicts_in_bf16_where_it_can_and_fp32_elsewhere(
    cats_owls_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "seed"
    options = dict(model="seed-cnn", image_size=64, epochs=1, precision="bf16", workers=0)
    result = photoclass.train(cats_owls_tiny, out, progress=False, **options)
    assert result.meta["precision"] == "bf16"
    bundle = load_bundle(out)
    assert bundle.precision == ("bf16" if native_bf16() else "fp32")
    photos = sorted((cats_owls_tiny / "val" / "owl").iterdir())[:4]
    here = photoclass.predict(bundle, photos)
    # the stored validation metrics are those of the arithmetic the model predicts in
    again = photoclass.evaluate(bundle, cats_owls_tiny / "val", progress=False)
    assert again.metrics["confusion_matrix"] == result.metrics["confusion_matrix"]
    monkeypatch.setattr("photoclass.runtime.native_bf16", lambda: False)
    fallback_bundle = load_bundle(out)
    assert fallback_bundle.precision == "fp32"
    fallback = photoclass.predict(fallback_bundle, photos)
    for a, b in zip(here, fallback, strict=True):
        assert a.path == b.path and a.probability == pytest.approx(b.probability, abs=0.02)


def test_normalize_is_scale_then_standardise_in_channels_last() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = Normalize(mean, std).batch(pixels)
    expected = (torch.from_numpy(pixels).permute(0, 3, 1, 2) / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / (
        torch.tensor(std).view(1, 3, 1, 1)
    )
    assert x.dtype == torch.float32 and x.shape == (2, 3, 5, 7)
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)
