"""Where and how models compute: the device and the arithmetic (`Compute`, chosen once per
run), and process-level speed settings for CPU training and inference.

Measured on the 2-core machines this project runs on (`bench/allocator.py`): with the
default glibc malloc, PyTorch hands the memory of every large activation back to the kernel
and faults it in again on the next batch, so about half of each step is spent in the kernel.
Keeping freed memory in the process roughly doubles throughput. Two ways to get there:
- the CLI re-executes itself with jemalloc preloaded, told never to return memory
  (`LD_PRELOAD`, as PyTorch's own `torch.backends.xeon.run_cpu` launcher does);
- in any process (the Python API, or where jemalloc is not installed) glibc's `mallopt`
  raises the thresholds at which it trims and maps memory.
Set PHOTOCLASS_ALLOCATOR=system to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from photoclass.errors import ConfigError

if TYPE_CHECKING:
    import torch

JEMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
    "/opt/homebrew/lib/libjemalloc.2.dylib",
)
# Never give dirty pages back: the working set of a training loop is the same every step.
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_tuned = False


def allocator_choice() -> str:
    """'jemalloc', 'glibc' or 'system' (untouched), from PHOTOCLASS_ALLOCATOR (default auto)."""
    choice = os.environ.get("PHOTOCLASS_ALLOCATOR", "auto").lower()
    if choice not in ("auto", "jemalloc", "glibc", "system"):
        choice = "auto"
    if choice == "auto":
        return "jemalloc" if find_jemalloc() else "glibc"
    return choice


def find_jemalloc() -> str | None:
    return next((p for p in JEMALLOC_CANDIDATES if Path(p).exists()), None)


def jemalloc_loaded() -> bool:
    return "jemalloc" in os.environ.get("LD_PRELOAD", "")


def reexec_with_jemalloc() -> None:
    """Replace this process by the same command with jemalloc preloaded (same PID).

    A no-op when jemalloc is already loaded, not installed, or not chosen."""
    if allocator_choice() != "jemalloc" or jemalloc_loaded() or sys.platform != "linux":
        return
    library = find_jemalloc()
    if library is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(filter(None, [library, env.get("LD_PRELOAD")]))
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    # torch's OpenMP threads otherwise spin while idle and take the cores from the decoding
    # and augmentation workers: 1.3-2x faster epochs and batch prediction (bench/allocator.py).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        os.execve(sys.executable, [sys.executable, "-m", "photoclass", *sys.argv[1:]], env)
    except OSError:
        return  # could not re-execute: carry on with glibc tuning instead


def tune_allocator() -> None:
    """Keep freed memory in-process under glibc (idempotent; nothing to do under jemalloc)."""
    global _tuned
    if _tuned or jemalloc_loaded() or allocator_choice() == "system" or sys.platform != "linux":
        return
    _tuned = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
        libc.mallopt(_M_TOP_PAD, 256 << 20)
    except (OSError, AttributeError):
        pass  # not glibc (musl, macOS): nothing to tune


@functools.cache  # the hardware does not change; prediction asks on every call
def native_bf16() -> bool:
    """True where the CPU computes bfloat16 in hardware (AMX tiles or AVX512-BF16) and PyTorch
    may use it: there, mixed precision makes seed-cnn steps ~1.7x faster; elsewhere bf16 is
    emulated, and slower. Kernels capped below AVX-512 (`ATEN_CPU_CAPABILITY=avx2`,
    `ONEDNN_MAX_CPU_ISA=AVX2`, how an AVX2-only CPU is imitated) count as not native."""
    import torch

    cpu = torch.cpu
    hardware = cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported()
    capped = torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2") or os.environ.get(
        "ONEDNN_MAX_CPU_ISA", ""
    ).upper().startswith(("SSE", "AVX2", "AVX_"))
    return bool(hardware and not capped)


DEVICES = "auto | cpu | cuda | cuda:N | mps"
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def select_device(name: str = "auto") -> torch.device:
    """`name` as a torch device: "auto" is CUDA when there is a GPU, else Apple's MPS, else the
    CPU; a device that is not there is a one-line `ConfigError`."""
    import torch

    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown `device` {name!r}; use {DEVICES}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f'`device` {name!r} asks for CUDA, but PyTorch sees no GPU here; use `device="cpu"`'
            )
        index = 0 if device.index is None else device.index
        if index >= count:
            raise ConfigError(
                f"`device` {name!r} is not here: PyTorch sees {count} GPU(s), cuda:0 to cuda:{count - 1}"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f'`device` {name!r} needs Apple silicon with PyTorch\'s MPS backend; use `device="cpu"`'
        )
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported `device` {name!r}; use {DEVICES}")
    return device


def auto_precision(device: torch.device, cpu_bf16: bool = True) -> str:
    """What "auto" precision means on `device`: bf16 mixed precision on GPUs that have it,
    else fp16 (with a gradient scaler); fp16 on MPS; on a CPU, bf16 where it is native and
    the model gains from it (`cpu_bf16`), else fp32."""
    import torch

    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "bf16" if cpu_bf16 and native_bf16() else "fp32"


@dataclass(frozen=True)
class Compute:
    """Where a model computes (`device`) and in what arithmetic (`precision`: "fp32", or
    "bf16"/"fp16" mixed precision: low-precision compute, float32 weights and optimizer
    state), chosen once for a run; everything that runs the model asks it."""

    device: torch.device
    precision: str  # "fp32" | "bf16" | "fp16"

    @classmethod
    def create(
        cls, device: str | torch.device = "auto", precision: str = "fp32", *, cpu_bf16: bool = True
    ) -> Compute:
        """The device by name (`select_device`) and the precision ("auto": `auto_precision`).
        On CUDA, also let float32 matrix products use TF32 (10-bit mantissa, far faster)."""
        import torch

        dev = device if isinstance(device, torch.device) else select_device(device)
        if precision == "auto":
            precision = auto_precision(dev, cpu_bf16)
        if precision not in PRECISIONS[:-1]:
            raise ConfigError(f"`precision` must be one of {' | '.join(PRECISIONS)} (got {precision!r})")
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return cls(dev, precision)

    @classmethod
    def for_inference(cls, device: str | torch.device, trained: str) -> Compute:
        """Predict in the arithmetic a model was trained in where `device` computes it
        natively (its validation numbers were measured in it), else in fp32."""
        dev = cls.create(device).device
        native = {
            "cpu": ("bf16",) if native_bf16() else (),
            "cuda": ("bf16", "fp16") if _cuda_bf16(dev) else ("fp16",),
            "mps": ("fp16",),
        }[dev.type]
        return cls(dev, trained if trained in native else "fp32")

    @property
    def dtype(self) -> torch.dtype | None:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> torch.autocast:
        """The autocast context for this device and precision (off for fp32)."""
        import torch

        return torch.autocast(self.device.type, self.dtype or torch.float32, enabled=self.dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (a no-op)."""
        import torch

        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    @property
    def pin_memory(self) -> bool:
        """Page-locked host batches let the copy to a GPU overlap compute."""
        return self.device.type == "cuda"

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=self.pin_memory)

    def describe(self) -> dict[str, str]:
        """What a bundle records: the device kind and the precision a model trained in."""
        return {"device": self.device.type, "precision": self.precision}


def _cuda_bf16(device: torch.device) -> bool:
    import torch

    return device.type == "cuda" and torch.cuda.is_bf16_supported()
