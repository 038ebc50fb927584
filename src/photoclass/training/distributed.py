"""Several training processes, one model: PyTorch's DistributedDataParallel, as `torchrun`
starts it, and everything the training loop asks of the other processes.

    torchrun --nproc-per-node 2 -m photoclass train data/cats-owls --out models/co

torchrun starts one process per GPU (or several on a CPU) and tells each its place in
environment variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). `setup` reads
them and joins the processes into one group: gloo on CPUs, NCCL on GPUs, each process on the
GPU `cuda:LOCAL_RANK`. Without them (or with WORLD_SIZE=1) it returns `SINGLE`, whose every
method is the identity, so a single process trains exactly as if this module did not exist.

Rank 0 is the one that shows progress, logs, checkpoints and writes the bundle; the other
ranks log errors only. Work that only one process does (checking the output folder, reading
a checkpoint, writing the bundle) goes through `from_main`, and work every process does but
may fail at (reading the data folder) through `everywhere`: an error raised in any process is
raised in all of them, so none is left waiting for the others (a hang) in its next exchange.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import nn

from photoclass.errors import DistributedError, PhotoclassError

T = TypeVar("T")
log = logging.getLogger(__name__)

# What torchrun sets in each process it starts.
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# How long a process waits for the others, when joining and at every exchange (local rank 0
# may decode a large data set while the others wait): PyTorch's own default for gloo.
DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes."""

    rank: int = 0
    local_rank: int = 0  # among the processes on this machine
    world_size: int = 1
    backend: str | None = None  # "gloo" | "nccl"; None: a single process
    device: str = "auto"  # what this process computes on (`cuda:LOCAL_RANK` under NCCL)
    owns_group: bool = False  # this module joined the process group, and leaves it in `close`
    log_level: int = logging.NOTSET  # the `photoclass` logger's level before `setup` quieted it

    @property
    def main(self) -> bool:
        """Rank 0: shows progress, logs, checkpoints and writes the bundle."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """What a bundle records about the processes that trained it."""
        return {"world_size": self.world_size, "backend": self.backend}

    # -- data ---------------------------------------------------------------------------------

    def rows(self, n: int) -> slice:
        """This process's contiguous share of `n` rows (the first `n % world_size` shares are one
        row longer), so that `gather_rows` puts the shares back in order."""
        per, extra = divmod(n, self.world_size)
        start = self.rank * per + min(self.rank, extra)
        return slice(start, start + per + (self.rank < extra))

    def sampler(self, dataset: torch.utils.data.Dataset, seed: int) -> torch.utils.data.Sampler | None:
        """This process's share of `dataset`, shuffled the same way in every process for the same
        epoch (`set_epoch`); None in a single process (the DataLoader shuffles everything)."""
        if self.world_size == 1:
            return None
        from torch.utils.data.distributed import DistributedSampler

        return DistributedSampler(dataset, self.world_size, self.rank, shuffle=True, seed=seed)

    # -- exchanges ----------------------------------------------------------------------------

    def gather(self, value: T) -> list[T]:
        """`value` from every process, in rank order."""
        if self.world_size == 1:
            return [value]
        values: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every process's `rows` (its `rows(n)` share of a tensor) put together, on every process."""
        if self.world_size == 1:
            return rows
        parts = [p for p in self.gather(rows.cpu()) if p.numel()]
        return torch.cat(parts).to(rows.device) if parts else rows

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over the processes (on the device: NCCL reduces GPU tensors)."""
        if self.world_size == 1:
            return value
        total = value.clone()
        torch.distributed.all_reduce(total)
        return total

    def from_main(self, fn: Callable[[], T]) -> T:
        """`fn()` run by rank 0, its result handed to every process; an error raised there is
        raised in every process."""
        mine = _attempt(fn) if self.main else None
        shared = mine if mine is None or mine.message is None else _failure_only(mine)
        if self.world_size > 1:
            box = [shared]
            torch.distributed.broadcast_object_list(box, src=0)
            shared = box[0]
        if self.main:
            return self._settle([], mine)  # its own error, or the value
        return self._settle([shared], shared)  # rank 0's failure, or the value it sent

    def everywhere(self, fn: Callable[[], T]) -> T:
        """`fn()` run by every process; if it fails in any, every process raises."""
        outcome = _attempt(fn)
        return self._settle(self.gather(_failure_only(outcome)), outcome)

    def local_main_first(self, fn: Callable[[], T]) -> T:
        """`fn()` run first by local rank 0 of each machine, then by the others (when it fills a
        per-machine cache, such as the decoded pixels, the others find it there)."""
        first = self.local_rank == 0
        outcome = _attempt(fn) if first else None
        self._settle(self.gather(_failure_only(outcome)), outcome)
        return outcome.value if first else fn()  # type: ignore[union-attr]

    def _settle(self, outcomes: list[_Outcome | None], mine: _Outcome | None) -> Any:
        if mine is not None and mine.error is not None:
            raise mine.error
        for rank, outcome in enumerate(outcomes):
            if outcome is not None and outcome.message is not None:
                raise DistributedError(f"stopped because rank {rank} failed: {outcome.message}")
        return mine.value if mine is not None else None

    # -- the model ----------------------------------------------------------------------------

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` whose backward pass averages the gradients over the processes (DDP), after
        copying rank 0's weights to every process; `model` itself in a single process."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.device(self.device).index] if self.backend == "nccl" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every process rank 0's buffers (batch-norm statistics): each process updated its
        own on its own batches, and validation and the bundle need one model."""
        if self.world_size > 1:
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def close(self) -> None:
        """Leave the process group (if `setup` joined it) and give rank > 0 its logging back."""
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if not self.main:
            _photoclass_logger().setLevel(self.log_level)


SINGLE = Dist()


def setup(device: str = "auto") -> Dist:
    """This process's place, from the variables torchrun sets, and the process group joined;
    a single process (no group, `device` as given) when WORLD_SIZE is unset or 1. `device` is
    the run's `device` option: under NCCL each process takes `cuda:LOCAL_RANK`. A launch that cannot work (a variable
    missing or wrong, a GPU per process lacking, processes that cannot reach each other) is a
    `DistributedError`."""
    env = os.environ
    world = _int_variable("WORLD_SIZE", default=1)
    if world == 1:
        return dataclasses.replace(SINGLE, device=device)
    missing = [name for name in LAUNCH_VARIABLES if not env.get(name)]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE is {world}, but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not set; start every process with torchrun, which sets them"
        )
    rank, local_rank = _int_variable("RANK"), _int_variable("LOCAL_RANK")
    if not 0 <= rank < world or not 0 <= local_rank <= rank:
        raise DistributedError(
            f"RANK {rank} / LOCAL_RANK {local_rank} do not fit WORLD_SIZE {world}; "
            "start every process with torchrun, which numbers them"
        )
    device, backend = _device(device, local_rank)
    if not torch.distributed.is_initialized():
        timeout = timedelta(seconds=_int_variable("PHOTOCLASS_DIST_TIMEOUT", default=DEFAULT_TIMEOUT_S))
        try:
            if backend == "nccl":
                torch.cuda.set_device(torch.device(device))
            torch.distributed.init_process_group(
                backend,
                timeout=timeout,
                device_id=torch.device(device) if backend == "nccl" else None,
            )
        except (RuntimeError, ValueError, OSError) as e:  # torch.distributed.DistError is a RuntimeError
            where = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
            raise DistributedError(
                f"rank {rank} could not join the other {world - 1} process(es) at {where} within "
                f"{timeout.total_seconds():.0f} s ({_first_line(e)}); start them all together with "
                "the same rendezvous address"
            ) from None
        owns = True
    else:  # the caller joined the group; it leaves it too
        owns = False
    if torch.distributed.get_world_size() != world or torch.distributed.get_rank() != rank:
        raise DistributedError(
            f"the process group ({torch.distributed.get_world_size()} processes) does not match "
            f"WORLD_SIZE {world} / RANK {rank}"
        )
    level = _photoclass_logger().level
    if rank != 0:  # one voice: rank 0 logs; the others only their errors
        _photoclass_logger().setLevel(logging.ERROR)
    dist = Dist(rank, local_rank, world, backend, device, owns, level)
    # A run that stops with an error never reaches `close`; a process group still open at exit
    # can abort the interpreter ("terminate called without an active exception", exit -6)
    # instead of the error's exit code 1.
    atexit.register(dist.close)
    log.info("%d training processes (%s); rank 0 writes the model", world, backend)
    return dist


def same_everywhere(
    dist: Dist,
    what: str,
    values: Mapping[str, Any],
    shown: Mapping[str, str] | None = None,
    *,
    parameters: bool = False,
) -> None:
    """A `DistributedError` unless every process has the same `values` (the options it was
    started with, the data it sees): processes that disagree would train different models.
    The error names the first key that differs (as an API parameter when `parameters`) and
    each side's value, or its `shown` text."""
    mine = (dict(values), dict(shown or {}))
    for rank, (other, other_shown) in enumerate(dist.gather(mine)):
        for key in dict.fromkeys([*mine[0], *other]):  # in the order given
            if mine[0].get(key) != other.get(key):
                name = f" `{key}`" if parameters else ""
                first, second = (
                    texts.get(key, repr(side.get(key)))
                    for side, texts in ((mine[0], mine[1]), (other, other_shown))
                )
                raise DistributedError(
                    f"the training processes disagree on {what}{name} (rank {dist.rank}: {first}; "
                    f"rank {rank}: {second}); start every process with the same command and data"
                )


def weights_digest(model: nn.Module) -> str:
    """A short SHA-256 of the model's weights and buffers, to show that every process ended
    with the same model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None  # raised again in this process
    message: str | None = None  # what the other processes are told


def _attempt(fn: Callable[[], Any]) -> _Outcome:
    try:
        return _Outcome(value=fn())
    except PhotoclassError as e:
        return _Outcome(error=e, message=str(e))
    except Exception as e:  # a bug or an OS error: still stop the others, with its last line
        return _Outcome(error=e, message=traceback.format_exception_only(e)[-1].strip())


def _failure_only(outcome: _Outcome | None) -> _Outcome | None:
    """What the others need to know of an outcome: whether (and why) it failed, not its value
    (nor the exception object, which need not survive pickling)."""
    if outcome is None or outcome.message is None:
        return None
    return _Outcome(message=outcome.message)


def _device(name: str, local_rank: int) -> tuple[str, str]:
    """The device of the process with `local_rank`, and the backend that connects such devices."""
    name = name.strip().lower()
    cuda = torch.cuda.is_available()
    if name in ("cpu",) or (name == "auto" and not cuda):
        return "cpu", "gloo"
    if name == "mps":
        raise DistributedError(
            "PyTorch's distributed training does not run on Apple's MPS; use `device=\"cpu\"` "
            "with several processes, or one process on MPS"
        )
    if not name.startswith("cuda") and name != "auto":
        return name, "gloo"  # not a device: `Compute.create` names the problem
    if ":" in name:
        raise DistributedError(
            f"`device` {name!r} names one GPU, but each of the training processes needs its own; "
            'use `device="cuda"` (process LOCAL_RANK takes cuda:LOCAL_RANK)'
        )
    count = torch.cuda.device_count() if cuda else 0
    if local_rank >= count:
        raise DistributedError(
            f"this machine runs more training processes than PyTorch sees GPUs ({count}); "
            "start at most one process per GPU"
        )
    return f"cuda:{local_rank}", "nccl"


def _int_variable(name: str, default: int | None = None) -> int:
    text = os.environ.get(name, "")
    if not text and default is not None:
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(
            f"{name}={text!r} is not a whole number; start the processes with torchrun"
        ) from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _photoclass_logger() -> logging.Logger:
    return logging.getLogger("photoclass")
