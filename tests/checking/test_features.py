"""Pretrained features: computed by the registered model, kept in the decode cache, refused for
a model without pretrained weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoclass.checking.features import embed_files, feature_size
from photoclass.data.cache import cache_dir, cache_key, decode_all
from photoclass.errors import ConfigError


def test_features_are_computed_once_per_set_of_files(tmp_path: Path) -> None:
    paths = []
    for i, colour in enumerate([(250, 30, 30), (30, 250, 30), (30, 30, 250)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (90, 60), colour).save(paths[-1])
    size = feature_size("efficientnet-lite0")
    images = decode_all(paths, size).images
    first = embed_files(paths, images)
    assert first.shape == (3, 1280) and np.isfinite(first).all()
    assert not np.allclose(first[0], first[1])  # different photos, different features
    stored = cache_dir() / f"{cache_key(paths, size)}.features-efficientnet-lite0.npy"
    np.save(stored, np.full_like(first, 7.0))  # what is in the cache is what comes back
    assert (embed_files(paths, images) == 7.0).all()
    os.utime(paths[0], ns=(1, 1))  # a file changed: computed again
    again = embed_files(paths, decode_all(paths, size).images)
    assert np.allclose(again, first, atol=1e-4)


def test_a_model_without_pretrained_weights_is_refused() -> None:
    with pytest.raises(ConfigError, match="has no pretrained weights.*efficientnet-lite0"):
        feature_size("small-cnn")
    with pytest.raises(ConfigError, match="unknown model"):
        feature_size("resnet")
