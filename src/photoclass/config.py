"""Typed settings for every stage, each option declared once.

An option is a dataclass field made by `option()`: its default, its help text, its bounds or
choices and its help panel live there and nowhere else. The command line derives its flags
from these fields (`batch_size` -> `--batch-size`, see `photoclass.cli.options`), a TOML file
uses the field names as keys (under a table named after the stage, `[train]`, `[collect]`, or
flat), and `validate()` checks every value against the declared bounds. An unknown key or a
value of the wrong type is an error, never silently ignored.

Defaults reproduce the reference tutorial (`shared/reference/reference-system.md`) wherever it
made a choice. Training options whose right value depends on the model (`recipe=True`) stay
`None` until `TrainConfig.resolve` fills them from that model's recipe
(`photoclass.models`), the way timm lets a model's own config fill what the user left unset;
their declared default applies when the recipe does not set them either.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from photoclass.errors import ConfigError
from photoclass.runtime import ENGINES

T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """What a config field declares besides its type: shown by `--help`, checked by `validate`."""

    help: str
    panel: str = ""
    bounds: str | None = None  # an interval: "[1, inf)", "(0, 1]", "[0, 1)"
    choices: tuple[str, ...] = ()
    recipe: bool = False  # None until the model's recipe (or `default`) fills it
    default: Any = None  # for recipe options: the value when the recipe does not set one
    cli: bool = True  # also a command-line flag

    def check(self, name: str, value: Any) -> None:
        """Raise `ConfigError` when `value` is outside the declared choices or bounds."""
        if value is None:
            return
        if self.choices and value not in self.choices:
            raise ConfigError(f"`{name}` must be one of {' | '.join(self.choices)} (got {value!r})")
        if self.bounds is not None:
            low, high = (float(x) for x in self.bounds[1:-1].split(","))
            ok_low = value > low if self.bounds[0] == "(" else value >= low
            ok_high = value < high if self.bounds[-1] == ")" else value <= high
            if not (ok_low and ok_high and not (isinstance(value, float) and math.isnan(value))):
                raise ConfigError(f"`{name}` must be in {self.bounds} (got {value!r})")


def option(
    default: Any,
    help: str,
    *,
    panel: str = "",
    bounds: str | None = None,
    choices: tuple[str, ...] = (),
    recipe: bool = False,
    cli: bool = True,
) -> Any:
    """A config field: `default`, the one-line `help`, and the `bounds` or `choices` it must obey.

    With `recipe=True` the field itself defaults to None ("the model's default") and `default`
    is used only when the model's recipe does not set the option."""
    meta = {"option": Option(help, panel, bounds, tuple(choices), recipe, default if recipe else None, cli)}
    if recipe:
        return field(default=None, metadata=meta)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def options_of(cls: type) -> dict[str, Option]:
    """The declared options of a config dataclass, by field name."""
    return {f.name: f.metadata["option"] for f in fields(cls) if "option" in f.metadata}


def validate(config: Any) -> None:
    """Check every field of `config` against its declaration (`Option.check`)."""
    for name, declared in options_of(type(config)).items():
        declared.check(name, getattr(config, name))


_MODEL, _OPT, _AUG, _DATA, _PRED = "Model", "Optimiser", "Augmentation", "Data", "Prediction"


@dataclass(frozen=True)
class TrainConfig:
    """Everything `photoclass train` needs besides the data and the output folder."""

    # -- model ---------------------------------------------------------------------------------
    model: str = option(
        "efficientnet-lite0",
        "seed-cnn | small-cnn | efficientnet-lite0 (see `photoclass models`).",
        panel=_MODEL,
    )
    image_size: int | None = option(
        224, "Input side in pixels.", panel=_MODEL, bounds="[32, 1024]", recipe=True
    )
    device: str = option(
        "auto", "auto | cpu | cuda | cuda:N | mps (auto: a GPU if there is one).", panel=_MODEL
    )
    # The model's arithmetic: "fp32", or "bf16"/"fp16" mixed precision (low-precision compute,
    # float32 weights and optimizer state), used for training, validation and later prediction
    # (which falls back to fp32 where the arithmetic is not native). "auto": mixed precision on
    # GPUs; on a CPU, bf16 where it computes bf16 natively (AMX or AVX512-BF16) and the model
    # gains from it, fp32 elsewhere (`photoclass.runtime.auto_precision`).
    precision: str | None = option(
        "auto",
        "Arithmetic: bf16/fp16 = mixed precision; auto = mixed where the device computes it natively.",
        panel=_MODEL,
        choices=("fp32", "bf16", "fp16", "auto"),
        recipe=True,
    )
    # What computes the layers that do not train: the probe's features and a fine-tune's frozen
    # layers ("auto": onnxruntime on a CPU in float32 where installed, else PyTorch; see
    # `photoclass.prediction.engine`). The trained layers always run in PyTorch.
    engine: str = option(
        "auto",
        "Engine for frozen layers: auto | torch | onnx (auto: onnxruntime on a CPU where installed).",
        panel=_MODEL,
        choices=ENGINES,
    )
    # -- optimiser -----------------------------------------------------------------------------
    epochs: int | None = option(
        5, "Training (fine-tuning) epochs.", panel=_OPT, bounds="[0, 10000]", recipe=True
    )
    batch_size: int | None = option(32, "Photos per step.", panel=_OPT, bounds="[1, 4096]", recipe=True)
    lr: float | None = option(1e-3, "Learning rate.", panel=_OPT, bounds="(0, 10]", recipe=True)
    optimizer: str | None = option(
        "adamw", "Optimizer.", panel=_OPT, choices=("rmsprop", "adamw", "sgd"), recipe=True
    )
    weight_decay: float | None = option(0.0, "Weight decay.", panel=_OPT, bounds="[0, 1]", recipe=True)
    scheduler: str | None = option(
        "constant", "Learning-rate schedule.", panel=_OPT, choices=("constant", "onecycle"), recipe=True
    )
    patience: int | None = option(
        3,
        "Early stopping: epochs without a better validation loss.",
        panel=_OPT,
        bounds="[1, 10000]",
        recipe=True,
    )
    # Pretrained models only: train the head on cached frozen features for `probe_epochs`,
    # then fine-tune the last `unfreeze` backbone blocks for `epochs` with augmentation.
    probe_epochs: int | None = option(
        0,
        "Pretrained models: head-only epochs on cached features.",
        panel=_OPT,
        bounds="[0, 10000]",
        recipe=True,
    )
    probe_lr: float | None = option(
        1e-2,
        "Pretrained models: the head's learning rate on cached features.",
        panel=_OPT,
        bounds="(0, 10]",
        recipe=True,
    )
    unfreeze: int | None = option(
        0, "Pretrained models: backbone blocks to fine-tune.", panel=_OPT, bounds="[0, 1000]", recipe=True
    )
    balance: bool = option(False, "Weight the loss by inverse class frequency.", panel=_OPT)
    label_smoothing: float | None = option(
        0.0, "Label smoothing of the loss (0 = off).", panel=_OPT, bounds="[0, 1)", recipe=True
    )
    # The pretrained network's own classifier already tells many everyday classes apart (ImageNet's
    # "great grey owl" from its "bald eagle"): when every class name matches some of its classes,
    # the trained head is blended with it, in weight space (`photoclass.training.prior`).
    prior: float | None = option(
        0.0,
        "Pretrained models: weight of the pretrained classifier's matching classes in the head (0 = off).",
        panel=_OPT,
        bounds="[0, 1]",
        recipe=True,
    )
    # -- augmentation, as in torchvision.transforms.v2 -------------------------------------------
    hflip: float | None = option(
        0.5, "Horizontal-flip probability.", panel=_AUG, bounds="[0, 1]", recipe=True
    )
    zoom: float | None = option(
        0.0, "Zoom range (0.2 = 80%..120%).", panel=_AUG, bounds="[0, 1)", recipe=True
    )
    shear: float | None = option(0.0, "Shear in degrees.", panel=_AUG, bounds="[0, 90)", recipe=True)
    crop_scale: float | None = option(
        1.0, "Random-resized-crop: smallest area kept (1 = off).", panel=_AUG, bounds="(0, 1]", recipe=True
    )
    rotate: float | None = option(
        0.0, "Rotation range in degrees.", panel=_AUG, bounds="[0, 180]", recipe=True
    )
    # FixRes (Touvron et al. 2019; torchvision's --train-crop-size): random crops show objects
    # larger than whole photos do, so a network trained on smaller crops than it is tested on
    # sees them at the size it learnt, and a step costs ratio^2 as much. small-cnn at 0.625
    # (80 px crops of 128 px photos) reaches a higher val accuracy on cats-owls in half the
    # time, but does worse on photos unlike its training photos (bench/generalise.py: held-out
    # look 80% vs 87%, low resolution 84% vs 95%), so no recipe sets it.
    train_size_ratio: float = option(
        1.0,
        "Side of the photos trained on, as a share of the image size (validation and prediction use the whole); "
        "below 1 trains faster.",
        panel=_AUG,
        bounds="[0.25, 1]",
    )
    color_jitter: float | None = option(
        0.0, "Brightness/contrast/saturation jitter.", panel=_AUG, bounds="[0, 1]", recipe=True
    )
    grayscale: float | None = option(
        0.0, "Black-and-white probability.", panel=_AUG, bounds="[0, 1]", recipe=True
    )
    # -- data ----------------------------------------------------------------------------------
    seed: int = option(0, "Random seed: same seed, same model.", panel=_DATA)
    val_fraction: float = option(
        0.2, "Held-out share of train/ when there is no val/.", panel=_DATA, bounds="(0, 1)"
    )
    workers: int = option(
        2, "Augmentation worker processes (0 = in the main process).", panel=_DATA, bounds="[0, 64]"
    )
    # -- what the bundle learns about its own answers ---------------------------------------
    unknown_rate: float = option(
        0.05,
        "Share of validation photos the unknown flag may call unknown (sets its threshold).",
        panel=_PRED,
        bounds="(0, 1)",
    )

    def resolve(self, recipe: Mapping[str, Any]) -> TrainConfig:
        """Fill every unset recipe option: from the model's `recipe`, else its declared default
        (`photoclass.models.ModelEntry.resolve` also settles "auto" precision for the device)."""
        filled = {
            name: declared.default if recipe.get(name) is None else recipe[name]
            for name, declared in options_of(TrainConfig).items()
            if declared.recipe and getattr(self, name) is None
        }
        cfg = dataclasses.replace(self, **filled)
        validate(cfg)
        return cfg

    @property
    def train_size(self) -> int:
        """The side of the (augmented) photos the network trains on, in pixels."""
        return round(self.image_size * self.train_size_ratio)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def recipe(**values: Any) -> Mapping[str, Any]:
    """A model's training defaults: values for `TrainConfig`'s recipe options (checked here,
    so a typo in a model file fails at import)."""
    declared = options_of(TrainConfig)
    for name, value in values.items():
        if name not in declared or not declared[name].recipe:
            raise ValueError(f"{name!r} is not a recipe option of TrainConfig")
        declared[name].check(name, value)
    return types.MappingProxyType(values)


_SEARCH, _SPLIT, _POLITE = "Search", "Split", "Politeness"


@dataclass(frozen=True)
class CollectConfig:
    """`photoclass collect`: defaults reproduce the reference tutorial's Flickr search."""

    classes: tuple[str, ...] = option((), "Class names; each is also the search text and tag.", cli=False)
    query: dict[str, str] = option(
        {}, "CLASS=TEXT: the search text for one class, repeatable (default: the class name).", panel=_SEARCH
    )
    tags: str | None = option(
        None, 'Required tags, comma list (default: the class name; "" for none).', panel=_SEARCH
    )
    tag_mode: str = option(
        "all", "Must a photo have all the tags, or any?", panel=_SEARCH, choices=("all", "any")
    )
    sort: str = option(
        "relevance",
        "Search order.",
        panel=_SEARCH,
        choices=(
            "relevance",
            "date-posted-desc",
            "date-posted-asc",
            "interestingness-desc",
            "interestingness-asc",
        ),
    )
    license: str | None = option(
        None, 'License ids or names, e.g. "4,5,9" or "CC BY 2.0,CC0" (default: all).', panel=_SEARCH
    )
    size: str = option(
        "c",
        "Photo size: c (800 px), z (640), l (1024), m (500) ...; a photo without it falls back to the nearest.",
        panel=_SEARCH,
    )
    per_class: int = option(960, "Photos to keep per class.", bounds="[1, 1000000]")
    split: tuple[float, float, float] = option(
        (0.8, 0.1, 0.1), "train,val,test shares, adding up to 1.", panel=_SPLIT
    )
    test_per_class: int | None = option(
        None,
        "This many test photos per class (instead of the test share).",
        panel=_SPLIT,
        bounds="[0, 1000000]",
    )
    seed: int = option(0, "Split seed: same photos and seed, same split.", panel=_SPLIT)
    dedup_distance: int = option(
        4, "Perceptual-hash bits: this close = the same photo, dropped.", panel=_SPLIT, bounds="[0, 64]"
    )
    group_distance: int = option(
        10,
        "Perceptual-hash bits: this close = near-duplicates, kept in one split.",
        panel=_SPLIT,
        bounds="[0, 64]",
    )
    group_by_owner: bool = option(True, "Keep one owner's photos in one split.", panel=_SPLIT)
    # Politeness. Photos come from a CDN (live.staticflickr.com), built for many parallel
    # readers: 32 connections is what a few browser tabs open. The rate cap only matters
    # when responses come back faster than 32 connections can ask.
    concurrency: int = option(32, "Simultaneous photo downloads.", panel=_POLITE, bounds="[1, 256]")
    rate: float = option(
        500.0, "Photo requests per second per host, at most.", panel=_POLITE, bounds="(0, inf)"
    )
    api_rate: float = option(
        1.0, "Flickr API calls per second (Flickr allows ~3,600 an hour).", panel=_POLITE, bounds="(0, inf)"
    )
    api_budget: int = option(3000, "API calls per hour this run may spend.", panel=_POLITE, bounds="[1, inf)")
    retries: int = option(
        5, "Retries per photo and per API call, after the first try.", panel=_POLITE, bounds="[0, 100]"
    )
    backoff: float = option(
        1.0, "Seconds before the first retry, doubling each time, jittered.", panel=_POLITE, bounds="[0, inf)"
    )
    timeout: float = option(30.0, "Seconds per HTTP request.", panel=_POLITE, bounds="(0, inf)")
    host_refusals: int = option(
        100,
        "Photo requests in a row a host may refuse (429, 5xx, no answer) before the run stops; rerun later.",
        panel=_POLITE,
        bounds="[1, 1000000]",
    )
    min_side: int = option(64, "Smaller photos are rejected (a thumbnail was served).", bounds="[1, inf)")
    max_pixels: int = option(
        40_000_000, "Larger photos are rejected (decompression bombs).", bounds="[1, inf)"
    )
    api_url: str = option(
        "https://api.flickr.com/services/rest/", "Flickr REST endpoint (or a `photoclass sim`)."
    )


_LISTEN, _BATCH = "Listening", "Batching and limits"


@dataclass(frozen=True)
class ServeConfig:
    """`photoclass serve`: where to listen, and how requests are batched and bounded. The API key
    is not a field: a secret is never part of a config object, which may be printed or logged."""

    host: str = option(
        "127.0.0.1", "Address to listen on; 0.0.0.0 = every network.", panel=_LISTEN
    )  # loopback unless told otherwise
    port: int = option(8000, "Port; 0 = any free one.", panel=_LISTEN, bounds="[0, 65535]")
    # One process already batches and uses every core, so more only pays on many cores.
    workers: int = option(
        1,
        "Worker processes, EACH loading its own copy of the model and sharing the cores.",
        panel=_LISTEN,
        bounds="[1, 1024]",
    )
    device: str = option(
        "auto", "auto | cpu | cuda | cuda:N | mps (auto: a GPU if there is one).", panel=_LISTEN
    )
    # Dynamic batching: a forward pass takes what has arrived, up to `max_batch` photos,
    # waiting at most `max_wait_ms` after the first for requests already in (still being read
    # or decoded) to join it (Ray Serve's `@serve.batch` defaults: 10 photos, 10 ms;
    # TorchServe's `max_batch_delay`: 100 ms).
    max_batch: int = option(16, "Most photos in one forward pass.", panel=_BATCH, bounds="[1, 4096]")
    max_wait_ms: float = option(
        5.0, "How long a photo waits for others to share its pass (ms).", panel=_BATCH, bounds="[0, 10000]"
    )
    # Two passes at once, each on half the cores, answered 5-13% more photos a second than one
    # on all of them (Zen 4, 2 cores, 8 clients: bench/serve.py): a pass on one thread never
    # waits for a second thread that decoding has taken the other core from.
    parallel_batches: int = option(
        2, "Forward passes computed at once, each on its share of the cores.", panel=_BATCH, bounds="[1, 64]"
    )
    # Prediction requests in the server at once (read, decoding, queued or in the model);
    # one more is answered 503 with Retry-After instead of waiting without limit.
    max_queue: int = option(
        64, "Requests in at once; more get 503 + Retry-After.", panel=_BATCH, bounds="[1, 100000]"
    )
    cors_origins: tuple[str, ...] = option(
        (), "Browser origins allowed to call the API (none).", cli=False
    )  # the CLI's repeatable --cors-origin


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check a TOML value against a dataclass field's type (int is accepted for float)."""
    origin = typing.get_origin(annotation)
    allowed = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
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
        if base is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
        if base is dict and isinstance(value, dict):
            return value
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in allowed if k is not type(None))
    raise ConfigError(f"config key '{name}' has the wrong type ({type(value).__name__}; expected {expected})")


def from_mapping(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build a config dataclass from a mapping, rejecting unknown keys, wrong types and values
    outside the declared bounds."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    config = cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})
    validate(config)
    return config


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML config file as a dict; a missing or malformed file is a one-line `ConfigError`."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; check the `config` path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML ({e})") from None


def load(cls: type[T], path: Path | None, section: str, overrides: Mapping[str, Any]) -> T:
    """Config file values (table `section`, or flat), then non-None overrides on top."""
    data: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path)
        data = dict(raw.get(section, raw))
        # A secret, read only by `photoclass.collecting.flickr.find_api_key`: never part of a
        # config object, which may be printed or saved next to a dataset.
        data.pop("flickr_api_key", None)
        # A file for `run` holds both tables; the other stage's table is not an unknown key.
        data = {
            k: v for k, v in data.items() if not isinstance(v, dict) or k in {f.name for f in fields(cls)}
        }  # type: ignore[arg-type]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(cls, data)
