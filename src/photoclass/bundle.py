"""The model bundle: `MODEL/model.safetensors` (weights) + `MODEL/photoclass.json` (everything
needed to rebuild and use them: architecture, classes, preprocessing, calibration, how it was
trained and how well it did) + `MODEL/novelty.safetensors` (training features the unknown flag
compares photos with; bundles made before it have none and predict without the flag). Loading
never unpickles anything, so a model file cannot run code."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from photoclass.data.preprocess import Normalize
from photoclass.errors import BundleError
from photoclass.models import ImageClassifier, create_model
from photoclass.prediction.novelty import FILE as NOVELTY_FILE
from photoclass.prediction.novelty import Novelty
from photoclass.runtime import Compute

FORMAT = "photoclass-bundle"
VERSION = 1
WEIGHTS, META = "model.safetensors", "photoclass.json"


@dataclass
class Bundle:
    """A loaded model: the network (in eval mode, on `compute.device`), its metadata, and the
    device and arithmetic it predicts in."""

    model: ImageClassifier
    meta: dict[str, Any]
    compute: Compute
    novelty: Novelty | None = None  # what the unknown flag needs; None in bundles made before it

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


def atomic_write(path: Path, write) -> None:
    """Write through `write(tmp_path)` then rename, so a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    write(tmp)
    os.replace(tmp, path)


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
    atomic_write(out / META, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
    return out


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / META
    if not path.is_file():
        raise BundleError(
            f"{folder} is not a photoclass model (no {META}); pass the folder a training run wrote"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON ({e}); retrain or restore the file") from None
    if meta.get("format") != FORMAT:
        raise BundleError(f"{path} is not a photoclass bundle description; retrain the model")
    if meta.get("version", 0) > VERSION:
        raise BundleError(f"{path} was written by a newer photoclass; upgrade photoclass")
    return meta


def load_bundle(folder: Path, device: str = "auto") -> Bundle:
    """Rebuild the network described by `photoclass.json`, load its weights and move it to
    `device` ("auto": a GPU if there is one). A bundle trained on any device loads on any
    other: the weights are stored on the CPU, in float32."""
    folder = Path(folder)
    meta = read_meta(folder)
    model = create_model(meta["architecture"], len(meta["classes"]), meta["image_size"], pretrained=False)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise BundleError(f"cannot read {folder / WEIGHTS} ({e}); retrain the model") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise BundleError(f"{folder / WEIGHTS} does not fit {META} ({first}); retrain") from None
    compute = Compute.for_inference(device, meta.get("precision", "fp32"))
    model.eval()
    return Bundle(
        model.to(compute.device, memory_format=torch.channels_last), meta, compute, _novelty(folder, meta)
    )


def _novelty(folder: Path, meta: dict[str, Any]) -> Novelty | None:
    if "novelty" not in meta:
        return None
    try:
        return Novelty.load(folder, meta["novelty"])
    except (FileNotFoundError, SafetensorError, OSError, KeyError, TypeError, ValueError) as e:
        raise BundleError(f"cannot read {folder / NOVELTY_FILE} ({e}); retrain the model") from None
