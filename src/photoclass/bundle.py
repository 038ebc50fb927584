"""The model bundle: `MODEL/model.safetensors` (weights) + `MODEL/photoclass.json` (everything
needed to rebuild and use them: architecture, classes, preprocessing, calibration, how it was
trained and how well it did) + `MODEL/novelty.safetensors` (training features the unknown flag
compares photos with; bundles made before it have none and predict without the flag). Loading
never unpickles anything, so a model file cannot run code.

A bundle is checked before anything is built from it, as a hostile file would be:
`photoclass.json` against `SCHEMA` (every field's kind and bounds, see `photoclass.schema`),
then the weights' header (names, shapes, dtypes and size) against the network the metadata
describes, built on torch's `meta` device, which allocates nothing. Only then is the network
built and the weights read. Every violation is a one-line `BundleError` naming the field and
the fix. A folder holding a pickled model (`.pt`, `.pth`, `.pkl`, `.ckpt`) instead of
safetensors is refused without opening the pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from photoclass.config import TrainConfig, options_of
from photoclass.data.preprocess import Normalize
from photoclass.errors import BundleError
from photoclass.files import atomic_write
from photoclass.models import ImageClassifier, create_model, list_models
from photoclass.prediction.novelty import FILE as NOVELTY_FILE
from photoclass.prediction.novelty import Novelty
from photoclass.runtime import Compute, check_engine
from photoclass.schema import (
    Bool,
    Const,
    Field,
    Int,
    Invalid,
    List,
    Map,
    Nullable,
    Num,
    Record,
    Str,
    validate,
)

FORMAT = "photoclass-bundle"
VERSION = 1
WEIGHTS, META = "model.safetensors", "photoclass.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")

# What training may produce, as `TrainConfig` declares it: a bundle cannot ask for more.
_TRAINING = options_of(TrainConfig)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = (
    int(float(x)) for x in _TRAINING["image_size"].bounds.strip("[]").split(",")
)
PRECISIONS = tuple(choice for choice in _TRAINING["precision"].choices if choice != "auto")
# Bounds no real bundle comes near and every hostile one meets before it can cost much.
MAX_META_BYTES = 64 * 2**20  # photoclass.json: a run's history and skipped-file list fit easily
MAX_CLASSES, MAX_CLASS_NAME = 10_000, 255  # a class name is a folder name
MAX_HEADER_BYTES = 16 * 2**20  # the safetensors JSON header, beyond the tensors' own bytes
MAX_PATH = 4096
MAX_NOVELTY = 100_000  # reference features the unknown flag may compare with

RETRAIN = f"retrain the model, or restore {META} as training wrote it"
_EPOCH = Record(
    {
        "phase": Field(Str(50)),
        "epoch": Field(Int(0, 10**6)),
        **{name: Field(Num(finite=False)) for name in ("train_loss", "train_acc", "val_loss", "val_acc")},
    }
)

# `photoclass.json`, field by field, in the order they are checked. Fields added after
# version 1 was first written are `required=False`, so older bundles keep loading; give each
# new one a line here (e.g. `"temperature": Field(Num(0.01, 100), required=False)`).
SCHEMA: dict[str, Field] = {
    "format": Field(Const(FORMAT), fix=f"{META} was not written by photoclass; retrain the model"),
    "version": Field(Int(1, VERSION)),
    "architecture": Field(
        Str(100, choices=list_models),
        fix="the model may come from a newer photoclass (upgrade it), else retrain the model",
    ),
    "classes": Field(List(Str(MAX_CLASS_NAME), min_len=2, max_len=MAX_CLASSES, unique=True)),
    "image_size": Field(Int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)),
    "mean": Field(List(Num(-1000, 1000), min_len=3, max_len=3)),
    "std": Field(List(Num(1e-6, 1000, positive=True), min_len=3, max_len=3)),
    "precision": Field(Str(10, choices=PRECISIONS), required=False),
    "device": Field(Str(20), required=False),  # where it was trained: informative, any loads anywhere
    "resize": Field(Str(20, choices=("squash",)), required=False),
    # What the run did: read by reports and the server's /api/info, never to build anything.
    "summary": Field(Str(1000, empty=True), required=False),
    "config": Field(Record({}, max_keys=1000), required=False),
    "data": Field(
        Record(
            {
                "root": Field(Str(MAX_PATH), required=False),
                "train": Field(Int(0), required=False),
                "val": Field(Int(0), required=False),
                "val_source": Field(Str(1000), required=False),
            }
        ),
        required=False,
    ),
    "history": Field(List(_EPOCH, max_len=100_000), required=False),
    "best_epoch": Field(Nullable(Int(0, 100_000)), required=False),
    "stopped_early": Field(Bool(), required=False),
    "validation": Field(
        Record(
            {
                "accuracy": Field(Num(0, 1), required=False),
                "accuracy_ci95": Field(List(Num(0, 1), min_len=2, max_len=2), required=False),
                "n": Field(Int(0), required=False),
            }
        ),
        required=False,
    ),
    "skipped": Field(
        List(Record({"path": Field(Str(MAX_PATH)), "reason": Field(Str(1000))}), max_len=10**6),
        required=False,
    ),
    "train_seconds": Field(Num(0), required=False),
    "versions": Field(Map(Str(200, empty=True), max_keys=100, key_len=100), required=False),
    # Calibration: logits are divided by it before the softmax (fitted on validation logits).
    "temperature": Field(Num(0.01, 100, positive=True), required=False),
    # The ImageNet prior blended into the head: read by reports, never to build anything.
    "prior": Field(
        Record(
            {
                "weight": Field(Num(0, 1), required=False),
                "matched": Field(Str(10_000, empty=True), required=False),
                "imagenet": Field(List(List(Int(0, 999), max_len=1000), max_len=MAX_CLASSES), required=False),
                "val_accuracy": Field(Num(0, 1), required=False),
            }
        ),
        required=False,
    ),
    # The unknown flag: k-th nearest-neighbour distance over `reference` training features
    # (novelty.safetensors) above `threshold` flags a photo.
    "novelty": Field(
        Record(
            {
                "k": Field(Int(1, 1000)),
                "threshold": Field(Num(0, 2)),
                "rate": Field(Num(0, 1)),
                "reference": Field(Int(1, MAX_NOVELTY)),
            }
        ),
        required=False,
    ),
}


@dataclass
class Bundle:
    """A loaded model: the network (in eval mode, on `compute.device`), its metadata, the
    device and arithmetic it predicts in, and the engine that runs it to predict ("auto" |
    "torch" | "onnx", see `photoclass.prediction.engine`)."""

    model: ImageClassifier
    meta: dict[str, Any]
    compute: Compute
    novelty: Novelty | None = None  # what the unknown flag needs; None in bundles made before it
    engine: str = "auto"  # what runs the model in `predict`: auto | torch | onnx

    @property
    def temperature(self) -> float:
        """Logits are divided by this before softmax (fitted on validation; 1.0 in older bundles)."""
        return float(self.meta.get("temperature", 1.0))

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def precision(self) -> str:
        """The arithmetic the model was trained in, where this device has it natively, else fp32."""
        return self.compute.precision

    @property
    def normalize(self) -> Normalize:
        """The preprocessing stored with the weights (pixels arrive resized to `image_size`)."""
        return Normalize(self.meta["mean"], self.meta["std"])


def package_versions() -> dict[str, str]:
    names = ("photoclass", "torch", "torchvision", "numpy", "pillow")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights as contiguous CPU tensors (safetensors wants contiguous ones, and
    channels_last weights are not; a bundle must load on a machine without the GPU)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_bundle(out: Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model.safetensors` and `photoclass.json` into `out` (the JSON last, so a
    folder with a `photoclass.json` always has its weights)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": VERSION, **meta, "versions": package_versions()}
    atomic_write(out / WEIGHTS, lambda tmp: save_file(state_tensors(model), str(tmp)))
    atomic_write(out / META, json.dumps(meta, indent=2))
    return out


def _refuse(path: Path, problem: str, fix: str = RETRAIN) -> BundleError:
    return BundleError(f"{path}: {problem}; {fix}")


def _pickles(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    except OSError:
        return []


def read_meta(folder: Path) -> dict[str, Any]:
    """`folder`'s `photoclass.json`, checked against `SCHEMA`; raises `BundleError`."""
    folder = Path(folder)
    path = folder / META
    pickles = _pickles(folder)
    if pickles and not (path.is_file() and (folder / WEIGHTS).is_file()):
        # Never opened: unpickling runs whatever code the file names.
        raise BundleError(
            f"{folder} holds a pickled model ({', '.join(pickles)}), which photoclass never opens "
            f"because loading a pickle can run any code; use a bundle written by `photoclass.train` "
            f"({WEIGHTS} + {META})"
        )
    if not path.is_file():
        raise BundleError(
            f"{folder} is not a photoclass model (no {META}); pass the folder a training run wrote"
        )
    size = path.stat().st_size
    if size > MAX_META_BYTES:
        raise _refuse(
            path, f"is {size:,} bytes, more than a bundle description can need ({MAX_META_BYTES:,})"
        )
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, huge ints
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _refuse(path, f"is not valid JSON ({first[:200]})") from None
    if not isinstance(meta, dict):
        raise _refuse(path, "holds no JSON object")
    version = meta.get("version")
    if meta.get("format") == FORMAT and type(version) is int and version > VERSION:
        raise _refuse(
            path,
            f"was written by a newer photoclass (bundle version {version}; this one reads up to {VERSION})",
            "upgrade photoclass",
        )
    try:
        validate(meta, SCHEMA)
    except Invalid as e:
        raise _refuse(path, str(e), e.fix or RETRAIN) from None
    best, history = meta.get("best_epoch"), meta.get("history", [])
    if best is not None and history and best >= len(history):
        raise _refuse(path, f'"best_epoch" is {best}, but "history" holds {len(history)} epochs')
    return meta


def _expected_tensors(meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict the described network has, on the `meta` device: shapes, no memory."""
    with torch.device("meta"):
        model = create_model(meta["architecture"], len(meta["classes"]), meta["image_size"], pretrained=False)
    return model.state_dict()


def check_weights(path: Path, expected: dict[str, torch.Tensor], described: str) -> None:
    """Compare the safetensors file's header (read without reading any tensor) with the
    tensors the network `described` needs: the file's size, then names, shapes and dtypes."""
    if not path.is_file():
        raise _refuse(path, "is missing or not a file")
    size, needed = path.stat().st_size, sum(t.numel() * t.element_size() for t in expected.values())
    if size > 8 + MAX_HEADER_BYTES + needed:
        raise _refuse(path, f"is {size:,} bytes, far more than the {needed:,} that {described} needs")
    try:
        with safe_open(str(path), framework="pt") as weights:
            found = {name: weights.get_slice(name) for name in weights.keys()}  # noqa: SIM118
            header = {name: (list(s.get_shape()), s.get_dtype()) for name, s in found.items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise _refuse(path, f"is not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        which = f'lacks tensor "{missing[0]}"' if missing else f'has an unknown tensor "{extra[0]}"'
        raise _refuse(path, f"{which} ({len(header)} tensors; {described} has {len(expected)})")
    for name, want in expected.items():
        shape, dtype = header[name]
        if shape != list(want.shape) or dtype != _SAFETENSORS_DTYPES.get(want.dtype):
            raise _refuse(
                path,
                f'tensor "{name}" is {dtype} {shape}, but {described} needs '
                f"{_SAFETENSORS_DTYPES.get(want.dtype)} {list(want.shape)}: the weights do not match {META}",
            )


_SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def load_bundle(folder: Path, device: str = "auto", engine: str = "auto") -> Bundle:
    """Check the bundle in `folder` (see the module docstring), then rebuild its network, load
    its weights and move it to `device` ("auto": a GPU if there is one), to predict with
    `engine`; raises `BundleError`
    for anything missing, malformed or mismatched. A bundle trained on any device loads on any
    other: the weights are stored on the CPU, in float32."""
    folder = Path(folder)
    check_engine(engine)
    meta = read_meta(folder)
    described = f"a {meta['architecture']} for {len(meta['classes'])} classes at {meta['image_size']} px"
    check_weights(folder / WEIGHTS, _expected_tensors(meta), described)
    model = create_model(meta["architecture"], len(meta["classes"]), meta["image_size"], pretrained=False)
    try:
        state = load_file(str(folder / WEIGHTS))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as e:  # the file changed since it was checked
        raise _refuse(folder / WEIGHTS, f"cannot be loaded ({str(e).splitlines()[0][:200]})") from None
    compute = Compute.for_inference(device, meta.get("precision", "fp32"))
    model.eval()
    novelty = _novelty(folder, meta, model)
    return Bundle(model.to(compute.device, memory_format=torch.channels_last), meta, compute, novelty, engine)


def _novelty(folder: Path, meta: dict[str, Any], model: ImageClassifier) -> Novelty | None:
    """The unknown flag's reference features, their header checked first like the weights'."""
    if "novelty" not in meta:
        return None
    n, width = meta["novelty"]["reference"], _pre_logits_width(model)
    expected = {"reference": torch.empty(n, width, dtype=torch.float16, device="meta")}
    check_weights(
        folder / NOVELTY_FILE, expected, f"the unknown flag of {meta['novelty']['reference']} photos"
    )
    try:
        return Novelty.load(folder, meta["novelty"])
    except (SafetensorError, OSError) as e:  # the file changed since it was checked
        raise _refuse(folder / NOVELTY_FILE, f"cannot be loaded ({str(e).splitlines()[0][:200]})") from None


def _pre_logits_width(model: ImageClassifier) -> int:
    """How many numbers the classifier reads (the width of the features the flag compares)."""
    return next(m for m in model.get_classifier().modules() if isinstance(m, torch.nn.Linear)).in_features
