"""Typed settings for every stage, in one place.

Defaults reproduce the reference tutorial (`shared/reference/reference-system.md`) wherever it
made a choice. Training options whose right value depends on the model default to `None`
and are filled from that model's recipe (`photoclass.models`), the way timm lets a model's
own config fill what the user left unset.

A TOML file can hold any of these fields, under a table named after the stage
(`[train]`, `[collect]`) or flat at top level; an unknown key or a value of the wrong type is
an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from photoclass.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Recipe:
    """A model's training defaults: what `None` in `TrainConfig` resolves to."""

    image_size: int
    batch_size: int
    epochs: int
    lr: float
    optimizer: str  # "rmsprop" | "adamw" | "sgd"
    weight_decay: float = 0.0
    scheduler: str = "constant"  # "constant" | "onecycle"
    # The model's arithmetic: "fp32", or "bf16" mixed precision (bfloat16 compute, float32
    # weights and optimizer state), used for training, validation and later prediction (which
    # falls back to fp32 on CPUs without native bf16). "auto" is bf16 where the CPU computes
    # bf16 natively (AMX or AVX512-BF16), fp32 elsewhere.
    precision: str = "fp32"
    patience: int = 3  # early stopping: epochs without a better validation loss
    # Augmentation, as in torchvision.transforms.v2.
    hflip: float = 0.5  # probability of a horizontal flip
    zoom: float = 0.0  # Keras-style zoom range: scale in [1 - zoom, 1 + zoom]
    shear: float = 0.0  # degrees
    crop_scale: float = 1.0  # RandomResizedCrop: smallest fraction of the area kept (1 = off)
    rotate: float = 0.0  # degrees
    color_jitter: float = 0.0  # brightness/contrast/saturation strength
    # Pretrained models only: train the head on cached frozen features for `probe_epochs`,
    # then fine-tune the last `unfreeze` backbone blocks for `epochs` with augmentation.
    probe_epochs: int = 0
    probe_lr: float = 1e-2
    unfreeze: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Everything `photoclass train` needs besides the data and the output folder."""

    model: str = "efficientnet-lite0"
    epochs: int | None = None
    image_size: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    scheduler: str | None = None
    precision: str | None = None
    patience: int | None = None
    hflip: float | None = None
    zoom: float | None = None
    shear: float | None = None
    crop_scale: float | None = None
    rotate: float | None = None
    color_jitter: float | None = None
    probe_epochs: int | None = None
    probe_lr: float | None = None
    unfreeze: int | None = None
    seed: int = 0
    val_fraction: float = 0.2  # used only when DATA has no val/ folder
    balance: bool = False  # weight the loss by inverse class frequency
    workers: int = 2  # augmentation worker processes (0 = in the main process)

    def resolve(self, recipe: Recipe) -> ResolvedTrainConfig:
        """Fill every `None` from the model's recipe."""
        given = {f.name: getattr(self, f.name) for f in fields(Recipe)}
        merged = dataclasses.replace(recipe, **{k: v for k, v in given.items() if v is not None})
        if merged.precision == "auto":
            from photoclass.runtime import native_bf16

            merged = dataclasses.replace(merged, precision="bf16" if native_bf16() else "fp32")
        cfg = ResolvedTrainConfig(
            model=self.model,
            seed=self.seed,
            val_fraction=self.val_fraction,
            balance=self.balance,
            workers=self.workers,
            **dataclasses.asdict(merged),
        )
        cfg.validate()
        return cfg


@dataclass(frozen=True)
class ResolvedTrainConfig(Recipe):
    """A `TrainConfig` with every model default filled in: what a run actually used."""

    model: str = "efficientnet-lite0"
    seed: int = 0
    val_fraction: float = 0.2
    balance: bool = False
    workers: int = 2

    def validate(self) -> None:
        checks = [
            (self.epochs >= 0, "epochs must be >= 0"),
            (self.image_size >= 32, "image-size must be >= 32"),
            (self.batch_size >= 1, "batch-size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.optimizer in ("rmsprop", "adamw", "sgd"), "optimizer must be rmsprop|adamw|sgd"),
            (self.scheduler in ("constant", "onecycle"), "scheduler must be constant|onecycle"),
            (self.precision in ("fp32", "bf16"), "precision must be fp32|bf16|auto"),
            (0 < self.val_fraction < 1, "val-fraction must be between 0 and 1"),
            (0 <= self.hflip <= 1, "hflip is a probability, between 0 and 1"),
            (0 <= self.zoom < 1, "zoom must be in [0, 1)"),
            (0 < self.crop_scale <= 1, "crop-scale must be in (0, 1]"),
            (self.workers >= 0, "workers must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid training option: {message}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CollectConfig:
    """`photoclass collect`: defaults reproduce the reference tutorial's Flickr search."""

    classes: tuple[str, ...] = ()
    queries: dict[str, str] = field(default_factory=dict)  # class -> search text (default: name)
    tags: str | None = None  # comma list; default: the class name, as the reference; "" = none
    tag_mode: str = "all"
    sort: str = "relevance"
    license: str | None = None  # comma list of names or ids; None = all licenses
    size: str = "c"  # url_c (800 px), falling back for photos that lack it
    per_class: int = 960
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    test_per_class: int | None = None  # overrides the test share of `split`
    seed: int = 0
    # Politeness. Photos come from a CDN (live.staticflickr.com), built for many parallel
    # readers: 32 connections is what a few browser tabs open. The rate cap only matters
    # when responses come back faster than 32 connections can ask.
    concurrency: int = 32  # simultaneous image downloads
    rate: float = 500.0  # image requests per second per host, at most
    api_rate: float = 1.0  # Flickr API calls per second (Flickr allows ~3,600/hour)
    api_budget: int = 3000  # API calls per hour this run may spend
    retries: int = 5  # per photo and per API call, after the first attempt
    backoff: float = 1.0  # seconds before the first retry, doubling each time, jittered
    timeout: float = 30.0  # seconds per HTTP request
    min_side: int = 64  # smaller photos are rejected (a thumbnail served instead)
    max_pixels: int = 40_000_000  # larger ones too (decompression bombs)
    dedup_distance: int = 4  # perceptual-hash bits: this close = the same photo, dropped
    group_distance: int = 10  # this close = near-duplicates, kept in one split
    group_by_owner: bool = True  # keep one owner's photos in one split
    api_url: str = "https://api.flickr.com/services/rest/"


@dataclass(frozen=True)
class ServeConfig:
    """`photoclass serve`: where to listen, and how requests are batched and bounded. The API key
    is not a field: a secret is never part of a config object, which may be printed or logged."""

    host: str = "127.0.0.1"  # loopback only; "0.0.0.0" opens it to every network
    port: int = 8000  # 0 = any free port
    # Worker processes, each with its own copy of the model, sharing the port. One process
    # already batches and uses every core, so more only pays on machines with many cores.
    workers: int = 1
    # Dynamic batching: a forward pass takes what has arrived, up to `max_batch` photos,
    # waiting at most `max_wait_ms` after the first for requests already in (still being read
    # or decoded) to join it (Ray Serve's `@serve.batch` defaults: 10 photos, 10 ms;
    # TorchServe's `max_batch_delay`: 100 ms).
    max_batch: int = 16
    max_wait_ms: float = 5.0
    # Prediction requests in the server at once (read, decoding, queued or in the model);
    # one more is answered 503 with Retry-After instead of waiting without limit.
    max_queue: int = 64
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API (none)

    def validate(self) -> None:
        checks = [
            (0 <= self.port <= 65535, "`port` must be between 0 and 65535"),
            (self.workers >= 1, "`workers` must be >= 1"),
            (self.max_batch >= 1, "`max_batch` must be >= 1"),
            (self.max_wait_ms >= 0, "`max_wait_ms` must be >= 0"),
            (self.max_queue >= 1, "`max_queue` must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid serving option: {message}")


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check a TOML value against a dataclass field's type (int is accepted for float)."""
    hint = annotation
    origin = typing.get_origin(hint)
    allowed: tuple[Any, ...] = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    for kind in allowed:
        base = typing.get_origin(kind) or kind
        if kind is type(None) and value is None:
            return None
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is bool and isinstance(value, bool):
            return value
        if base is str and isinstance(value, str):
            return value
        if base is tuple and isinstance(value, list):
            return tuple(value)
        if base is dict and isinstance(value, dict):
            return value
    raise ConfigError(f"config key '{name}' has the wrong type ({type(value).__name__}); see --help")


def from_mapping(cls: type[T], data: dict[str, Any]) -> T:
    """Build a config dataclass from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    return cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})


def load(cls: type[T], path: Path | None, section: str, overrides: dict[str, Any]) -> T:
    """Config file values (table `section`, or flat), then non-None CLI overrides on top."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; check the --config path") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML ({e})") from None
        data = dict(raw.get(section, raw))
        # A secret, read only by `photoclass.collecting.flickr.find_api_key`: never part of a
        # config object, which may be printed or saved next to a dataset.
        data.pop("flickr_api_key", None)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(cls, data)
