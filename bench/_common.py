"""Helpers shared by the benchmarks: timed subprocesses, medians, tables, photo subsets.

Every benchmark runs its baseline and photoclass back to back in one script, in fresh
subprocesses, and reports medians and ratios: the machines are small and shared, so absolute
numbers drift from run to run while ratios measured minutes apart hold much better."""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from photoclass import runtime

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHOTOCLASS_BENCH_DATA", ROOT.parent / "shared" / "data" / "cats-owls"))
PHOTOCLASS = [sys.executable, "-m", "photoclass"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class Run:
    """One finished subprocess: wall seconds, CPU seconds and peak resident memory."""

    wall: float
    user: float
    sys: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run(
    cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None
) -> Run:
    """Run `cmd` to completion; resource use comes from `wait4`, so it is this child's (and
    the children it waited for) alone. `max_rss_mb` is the largest single process's peak RSS."""
    full_env = {**os.environ, **(env or {})}
    for key, value in (env or {}).items():
        if value is None:  # None removes a variable
            full_env.pop(key, None)
    tick = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # communicate() reads the pipes; wait4 afterwards reaps the child and gives its rusage.
    out, err = _communicate_no_wait(proc)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - tick
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = Run(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, out, err)
    if check and proc.returncode != 0:
        tail = "\n".join((err or out).strip().splitlines()[-15:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return result


def _communicate_no_wait(proc: subprocess.Popen) -> tuple[str, str]:
    """Read stdout and stderr to EOF without reaping the process (so `wait4` still can)."""
    import threading

    chunks: dict[str, str] = {}

    def read(name: str, stream) -> None:
        chunks[name] = stream.read()
        stream.close()

    threads = [
        threading.Thread(target=read, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return chunks["out"], chunks["err"]


def command_env() -> dict[str, str]:
    """What the `photoclass` command gives itself (runtime.reexec_with_jemalloc): jemalloc where
    installed, and OpenMP threads that sleep when idle. Baselines and in-process
    measurements get the same (`as_the_command`)."""
    env = {"OMP_WAIT_POLICY": "PASSIVE"}
    library = runtime.find_jemalloc()
    if library:
        env.update(LD_PRELOAD=library, MALLOC_CONF=runtime.JEMALLOC_CONF)
    return env


def as_the_command() -> None:
    """Re-execute this script under `command_env()` unless it already runs so: what a script
    times in-process then runs with the allocator and threads the `photoclass` command has."""
    env = command_env()
    if any(os.environ.get(k) != v for k, v in env.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[object]], title: str | None = None) -> str:
    """A plain-text table (right-aligned numbers) that reads the same in a terminal and a README."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [title] if title else []
    lines.append(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def class_files(split_dir: Path) -> dict[str, list[Path]]:
    return {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(split_dir.iterdir())
        if d.is_dir()
    }


def stratified_subset(data: Path, photos: int, dest: Path, seed: int = 0) -> Path:
    """A dataset folder under `dest` holding `photos` training photos (the same share of each
    class) and a quarter as many validation photos (the 2,000/500 proportion of cats-owls),
    copied (photoclass does not read symbolic links that lead outside the folder it is given).
    Returns `data` itself when the subset would be the whole set."""
    train, val = class_files(data / "train"), class_files(data / "val")
    n_train = sum(map(len, train.values()))
    if photos >= n_train:
        return data
    rng = random.Random(seed)
    per_class_train = max(1, photos // len(train))
    per_class_val = max(1, per_class_train // 4)
    for split, files, per_class in (("train", train, per_class_train), ("val", val, per_class_val)):
        for name, paths in files.items():
            folder = dest / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for path in rng.sample(paths, min(per_class, len(paths))):
                shutil.copyfile(path, folder / path.name)
    return dest


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


# What decides speed here: vector width, native bf16, matrix tiles.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
EMULATION = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")  # how an AVX2-only CPU is imitated


def cpu_info() -> dict[str, object]:
    """The CPU model, the flags that matter, the core count and what PyTorch's kernels use; a
    `kind` label for tables ("AVX2 emulated on ..." when EMULATION variables cap the kernels)."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:  # not Linux
        import platform

        model = platform.processor() or platform.machine()
    found = [f for f in CPU_FLAGS if f in flags]
    if "amx_tile" in flags:
        kind = "AMX"
    elif "avx512_bf16" in flags:
        kind = "AVX-512 with bf16"
    elif "avx512f" in flags:
        kind = "AVX-512"
    elif "avx2" in flags:
        kind = "AVX2"
    else:
        kind = "other"
    capped = {k: os.environ[k] for k in EMULATION if os.environ.get(k)}
    if capped:
        kind = f"AVX2 emulated ({kind} CPU, {' '.join(f'{k}={v}' for k, v in capped.items())})"
    return {"model": model, "kind": kind, "flags": found, "cores": os.cpu_count(), "emulation": capped}


def cpu_summary() -> str:
    """One line for the top of every benchmark's output."""
    info = cpu_info()
    return f"CPU: {info['model']}, {info['cores']} cores; {info['kind']}; flags: {' '.join(info['flags'])}"


def machine() -> str:
    """One line on where the numbers came from (cores and load: the machines are shared)."""
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPU cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"
    )


def cpu() -> str:
    """The CPU's model and flags, as `lscpu` reports them (empty where there is no lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
    wanted = ("Model name", "CPU(s)", "Flags")
    return "\n".join(line for line in out.splitlines() if line.split(":")[0].strip() in wanted)
