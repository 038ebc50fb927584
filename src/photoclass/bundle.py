"""The model bundle: `MODEL/model.safetensors` (weights) + `MODEL/photoclass.json` (everything
needed to rebuild and use them: architecture, classes, preprocessing, how it was trained and
how well it did). Loading never unpickles anything, so a model file cannot run code."""

from __future__ import annotations

import json
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
from photoclass.files import atomic_write
from photoclass.models import create_model
from photoclass.runtime import native_bf16

FORMAT = "photoclass-bundle"
VERSION = 1
WEIGHTS, META = "model.safetensors", "photoclass.json"


@dataclass
class Bundle:
    """A loaded model: the network (in eval mode) and its metadata."""

    model: nn.Module
    meta: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def precision(self) -> str:
        """The arithmetic the model was trained in, where this CPU has it natively, else fp32."""
        trained = self.meta.get("precision", "fp32")
        return "bf16" if trained == "bf16" and native_bf16() else "fp32"

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
    # channels_last weights are not contiguous in the default layout; safetensors wants it.
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def save_bundle(out: Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model.safetensors` and `photoclass.json` into `out` (the JSON last, so a
    folder with a `photoclass.json` always has its weights)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": VERSION, **meta, "versions": package_versions()}
    atomic_write(out / WEIGHTS, lambda tmp: save_file(state_tensors(model), str(tmp)))
    atomic_write(out / META, json.dumps(meta, indent=2))
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


def load_bundle(folder: Path) -> Bundle:
    """Rebuild the network described by `photoclass.json` and load its weights."""
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
    model.eval()
    return Bundle(model.to(memory_format=torch.channels_last), meta)
