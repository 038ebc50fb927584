"""Training state in one safetensors file, written atomically after every epoch, so a run
killed at any moment (even `kill -9`) resumes from its last finished epoch.

Tensors (current weights, best weights and their validation logits, optimizer buffers) are
the file's tensors; the rest
(epoch, history, early-stopping counters, optimizer hyper-parameters) is JSON in its
metadata. Nothing is pickled."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from photoclass.files import atomic_write

NAME = "checkpoint.safetensors"


@dataclass
class TrainState:
    """Where a run is: enough, with the tensors, to continue it bit for bit."""

    phase: str = ""  # "probe" (head on frozen features), then "train"; "" before the first
    epoch: int = 0  # epochs finished in the current phase
    step: int = 0  # optimizer steps taken in the current phase (drives the LR schedule)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_loss: float = float("inf")
    best_epoch: int | None = None  # index into history
    bad_epochs: int = 0
    stopped_early: bool = False
    seconds: float = 0.0  # spent training up to this checkpoint, earlier runs included


def run_state(out: Path) -> str:
    """What a model folder holds: "finished" (a bundle), "unfinished" (a checkpoint to resume
    from) or "empty"."""
    from photoclass.bundle import META

    if (out / NAME).exists():
        return "unfinished"
    return "finished" if (out / META).exists() else "empty"


def _flatten_optimizer(
    opt: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    sd = opt.state_dict()
    for index, slots in sd["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for key, value in info["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": info["param_groups"]}


def save_checkpoint(
    path: Path,
    state: TrainState,
    model: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    run: dict[str, Any],
) -> None:
    """`run` identifies the run (resolved config, data fingerprint): resuming checks it."""
    tensors = {f"model.{k}": v.contiguous() for k, v in model.items()}
    tensors |= {f"best.{k}": v.contiguous() for k, v in best.items()}
    optim_info = None
    if optimizer is not None:
        optim_tensors, optim_info = _flatten_optimizer(optimizer)
        tensors |= optim_tensors
    meta = {"state": asdict(state), "optimizer": optim_info, "run": run}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"json": json.dumps(meta)}))


@dataclass
class Checkpoint:
    state: TrainState
    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    run: dict[str, Any]


def load_checkpoint(path: Path) -> Checkpoint:
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["json"])
        # "logits": validation logits that checkpoints before the calibrated head carried
        groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "best": {}, "optim": {}, "logits": {}}
        for key in f.keys():  # noqa: SIM118  (a safetensors handle, not a dict)
            prefix, rest = key.split(".", 1)
            groups[prefix][rest if prefix != "optim" else key] = f.get_tensor(key)
    optimizer = None
    if meta["optimizer"] is not None:
        optimizer = _unflatten_optimizer(groups["optim"], meta["optimizer"])
    return Checkpoint(
        TrainState(**meta["state"]),
        groups["model"],
        groups["best"],
        optimizer,
        meta["run"],
    )
