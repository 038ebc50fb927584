"""Process-level speed settings for CPU training and inference.

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
from pathlib import Path

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
    """True where the CPU computes bfloat16 in hardware (AMX tiles or AVX512-BF16): there,
    mixed precision makes seed-cnn steps ~1.7x faster; elsewhere bf16 is emulated, and slower."""
    import torch

    cpu = torch.cpu
    return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())
