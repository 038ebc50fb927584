from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

from photoclass.config import TrainConfig, load
from photoclass.data.augment import create_augmentation
from photoclass.errors import ConfigError
from photoclass.models import create_model, get_model_entry


def test_unset_options_come_from_the_model_recipe() -> None:
    cfg = TrainConfig(model="seed-cnn", epochs=2).resolve(get_model_entry("seed-cnn").recipe)
    # The reference tutorial's recipe, except what was overridden.
    assert (cfg.image_size, cfg.batch_size, cfg.optimizer, cfg.epochs) == (300, 5, "rmsprop", 2)
    assert (cfg.zoom, cfg.shear, cfg.hflip) == (0.2, 0.2, 0.5)


def test_toml_file_then_cli_overrides(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text('[train]\nmodel = "small-cnn"\nepochs = 7\nlr = 1\nbalance = true\n')
    cfg = load(TrainConfig, path, "train", {"epochs": 3, "seed": None})
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.balance, cfg.seed) == ("small-cnn", 3, 1.0, True, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochz = 3", "unknown config key(s) epochz"),
        ('epochs = "three"', "'epochs' has the wrong type"),
        ("epochs = [", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(TrainConfig, path, "train", {})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_invalid_values_and_unknown_models_are_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet'; choose one of: efficientnet-lite0"):
        get_model_entry("resnet")
    with pytest.raises(ConfigError, match=r"`val_fraction` must be in \(0, 1\)"):
        TrainConfig(val_fraction=1.5).resolve(get_model_entry("small-cnn").recipe)


def test_seed_cnn_is_the_reference_architecture() -> None:
    model = create_model("seed-cnn", 2, 300)
    dense = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert dense.in_features == 35 * 35 * 128  # "~157k features into Dense(64)"
    n_params = sum(p.numel() for p in model.parameters())
    assert 10_000_000 < n_params < 10_200_000  # "~10M of the model's weights"
    assert create_model("seed-cnn", 3, 300).get_classifier()[0].out_features == 3  # softmax for > 2


@pytest.mark.parametrize("crop_scale", [0.25, 1.0])
def test_training_photos_are_train_size_ratio_of_the_image_size(crop_scale: float) -> None:
    """Random crops (or, without them, the whole photo) come out at the training side; the
    cached photo they are taken from, like validation's, is `image_size` a side."""
    cfg = get_model_entry("small-cnn").resolve(
        TrainConfig(model="small-cnn", image_size=64, train_size_ratio=0.625, crop_scale=crop_scale)
    )
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert cfg.train_size == 40 and create_augmentation(cfg)(photo).shape == (3, 40, 40)
    full = dataclasses.replace(cfg, train_size_ratio=1.0)
    assert create_augmentation(full)(photo).shape == (3, 64, 64)


def test_a_network_with_a_dense_layer_trains_at_its_image_size_only() -> None:
    with pytest.raises(ConfigError, match="seed-cnn takes photos of `image_size` only") as info:
        get_model_entry("seed-cnn").resolve(TrainConfig(model="seed-cnn", train_size_ratio=0.5))
    assert "\n" not in str(info.value)
