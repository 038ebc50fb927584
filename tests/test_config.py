from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from photoclass.config import TrainConfig, load
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
