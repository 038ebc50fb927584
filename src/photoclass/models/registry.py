"""The model registry (timm's, scaled down): each model file registers a builder under a
kebab-case name, with the recipe (training defaults) and preprocessing that go with it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from photoclass.config import TrainConfig
from photoclass.errors import ConfigError
from photoclass.models.classifier import ImageClassifier


@dataclass(frozen=True)
class ModelCfg:
    """Preprocessing that travels with the weights into `photoclass.json`."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pretrained: bool = False
    # The CPU bf16 hardware (`photoclass.runtime.bf16_hardware`: "amx", "avx512") on which bf16
    # mixed precision trains this model faster, so "auto" precision picks it there: seed-cnn's
    # stride-1 convolutions gain on both (~1.7x); small-cnn's strided ones only with AMX (2.6x
    # slower on AVX512-BF16 alone); EfficientNet-Lite0's depthwise ones on neither (measured
    # no faster with AMX), so "auto" leaves them in fp32.
    cpu_bf16: tuple[str, ...] = ("amx", "avx512")
    # Global pooling before the head: the network takes photos of any side, so it can train on
    # smaller ones than it predicts (`train_size_ratio`). A flattened dense layer cannot.
    any_size: bool = True


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., ImageClassifier]  # build(num_classes, image_size, pretrained)
    recipe: Mapping[str, Any]  # values for TrainConfig's recipe options (`photoclass.config.recipe`)
    cfg: ModelCfg
    summary: str

    def resolve(self, config: TrainConfig) -> TrainConfig:
        """`config` with every unset option from this model's recipe, and "auto" precision
        settled for the device it names."""
        cfg = config.resolve(self.recipe)
        if cfg.train_size_ratio != 1 and not self.cfg.any_size:
            raise ConfigError(
                f"{self.name} takes photos of `image_size` only (its dense layer is sized for them); "
                "leave `train_size_ratio` at 1"
            )
        if cfg.precision == "auto":
            from photoclass.runtime import Compute

            cfg = dataclasses.replace(
                cfg, precision=Compute.create(cfg.device, "auto", cpu_bf16=self.cfg.cpu_bf16).precision
            )
        return cfg

    def defaults(self) -> TrainConfig:
        """Every training option this model trains with when the user sets none."""
        return self.resolve(TrainConfig(model=self.name))


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, recipe: Mapping[str, Any], cfg: ModelCfg, summary: str):
    """Decorator: file a builder under `name`."""

    def wrap(build: Callable[..., ImageClassifier]) -> Callable[..., ImageClassifier]:
        _REGISTRY[name] = ModelEntry(name, build, recipe, cfg, summary)
        return build

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model '{name}'; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, image_size: int, pretrained: bool = True) -> ImageClassifier:
    """Build a registered model with a `num_classes`-way head.

    `pretrained=False` skips loading ImageNet weights (used when a bundle's own weights are
    about to be loaded over them)."""
    entry = get_model_entry(name)
    return entry.build(num_classes=num_classes, image_size=image_size, pretrained=pretrained)
