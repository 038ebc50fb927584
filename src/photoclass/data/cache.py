"""Decode each photo once per image size and keep the uint8 pixels.

Decoding a Flickr-size JPEG costs more than a small CNN's forward pass, so a naive pipeline
spends most of every epoch in libjpeg. Here every photo is decoded and resized once, in
parallel, into a memory-mapped `.npy` file under the user's cache folder, keyed by the files'
paths, sizes and modification times: the page cache keeps it in RAM when it fits, the disk
holds it when it does not, and later runs (resume, evaluate, another seed) reuse it. The
folder is kept under PHOTOCLASS_CACHE_GB gigabytes (default 20) by deleting the arrays used
least recently.

A data set whose decoded pixels would not fit under that cap is not decoded ahead (it would
evict everything else and still not fit, or fill the memory): `fits_in_cache` says so, the
training loop then streams it (`photoclass.data.decode.LazyPixels`: each photo decoded when a
DataLoader worker reads it), and `check_all` finds its unreadable photos first, without
keeping any pixels.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoclass.data.decode import try_decode
from photoclass.files import atomic_write
from photoclass.progress import NO_PROGRESS, Progress


@dataclass(frozen=True)
class Decoded:
    """Pixels of the photos that decoded (`images[i]` is `paths[ok[i]]`) and the ones that did not."""

    images: np.ndarray  # (n_ok, size, size, 3) uint8, possibly memory-mapped
    ok: list[int]  # indexes into the requested paths
    skipped: list[dict[str, str]]  # {"path": ..., "reason": ...}


DEFAULT_CACHE_GB = 20.0
# The side at which `check_all` decodes: JPEGs are then decoded at 1/8 scale, which reads (and
# checks) every byte of the file at a fraction of the cost.
CHECK_SIZE = 32


def cache_limit_gb() -> float:
    """The decode cache's cap in gigabytes: PHOTOCLASS_CACHE_GB, default 20."""
    return float(os.environ.get("PHOTOCLASS_CACHE_GB") or DEFAULT_CACHE_GB)


def decoded_gb(n: int, size: int) -> float:
    """Gigabytes of `n` photos decoded at `size` x `size` (uint8 RGB)."""
    return n * size * size * 3 / 1e9


def fits_in_cache(n: int, size: int) -> bool:
    """Whether `n` photos decoded at `size` fit under the decode cache's cap."""
    return decoded_gb(n, size) <= cache_limit_gb()


def cache_root() -> Path:
    """photoclass's folder in the user cache: PHOTOCLASS_CACHE, else $XDG_CACHE_HOME/photoclass."""
    return Path(
        os.environ.get("PHOTOCLASS_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "photoclass"
    )


def cache_dir() -> Path:
    return cache_root() / "decoded"


def cache_key(paths: Sequence[Path], size: int) -> str:
    """What names the cached pixels of `paths` at `size`: the files' paths, sizes and times."""
    digest = hashlib.sha256(f"v1 {size}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def decode_all(
    paths: Sequence[Path],
    size: int,
    *,
    workers: int | None = None,
    progress: Progress = NO_PROGRESS,
    use_cache: bool = True,
) -> Decoded:
    """Decode `paths` to (size, size, 3) uint8, from the cache when it is there."""
    paths = [Path(p) for p in paths]
    folder = cache_dir()
    key = cache_key(paths, size)
    array_path, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    if use_cache and array_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        os.utime(array_path)  # recently used: evicted last
        return Decoded(np.load(array_path, mmap_mode="r"), meta["ok"], meta["skipped"])

    images, ok, skipped = _decode_parallel(paths, size, workers, progress)
    if use_cache:
        folder.mkdir(parents=True, exist_ok=True)
        # The array first: a cache entry counts only once its JSON exists.
        atomic_write(array_path, lambda tmp: _save_array(tmp, images))
        atomic_write(meta_path, json.dumps({"ok": ok, "skipped": skipped}))
        evict(folder, keep=array_path)
        images = np.load(array_path, mmap_mode="r")
    return Decoded(images, ok, skipped)


def check_all(
    paths: Sequence[Path], *, workers: int | None = None, progress: Progress = NO_PROGRESS
) -> tuple[list[int], list[dict[str, str]]]:
    """Which of `paths` decode (their indexes) and why the others do not, keeping no pixels:
    what `decode_all` reports, for photos that will be decoded later, batch by batch."""
    _, ok, skipped = _decode_parallel(
        [Path(p) for p in paths], CHECK_SIZE, workers, progress, keep=False, verb="checking"
    )
    return ok, skipped


def derived(paths: Sequence[Path], size: int, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """An array computed from the decoded photos of `paths` at `size` (their features under a
    pretrained model, say), kept in the cache beside the pixels as `<key>.<name>.npy`: computed
    once, read back while the files stay the same, evicted like the pixels."""
    folder = cache_dir()
    path = folder / f"{cache_key([Path(p) for p in paths], size)}.{name}.npy"
    if path.exists():
        os.utime(path)  # recently used: evicted last
        return np.load(path)
    array = compute()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: _save_array(tmp, array))
    evict(folder, keep=path)
    return array


def _save_array(path: Path, images: np.ndarray) -> None:
    with open(path, "wb") as out:  # a file object: given a name, `np.save` would append ".npy"
        np.save(out, images)


def evict(folder: Path, keep: Path, limit_gb: float | None = None, pattern: str = "*.npy") -> list[Path]:
    """Delete the least recently used files matching `pattern` (never `keep`) until they take
    at most `limit_gb` (PHOTOCLASS_CACHE_GB, default 20) gigabytes; return what was deleted."""
    if limit_gb is None:
        limit_gb = cache_limit_gb()
    arrays = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime_ns)
    total = sum(p.stat().st_size for p in arrays)
    deleted = []
    for old in arrays:
        if total <= limit_gb * 1e9:
            break
        if old == keep or ".part." in old.name:  # in use, or being written by another run
            continue
        total -= old.stat().st_size
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
        deleted.append(old)
    return deleted


def _decode_parallel(
    paths: list[Path],
    size: int,
    workers: int | None,
    progress: Progress,
    *,
    keep: bool = True,
    verb: str = "decoding",
) -> tuple[np.ndarray | None, list[int], list[dict[str, str]]]:
    """Decode `paths` in a pool of processes: the pixels of those that decode (`keep=False`:
    none, only which decode), their indexes, and the reasons of the others."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8) if keep else None
    ok: list[int] = []
    skipped: list[dict[str, str]] = []
    jobs = [(str(p), size) for p in paths]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)

    def collect(results) -> None:
        with progress.task(f"{verb} {len(paths)} photos", len(paths)) as bar:
            for i, (pixels, reason) in enumerate(results):
                if pixels is None:
                    skipped.append({"path": str(paths[i]), "reason": reason})
                else:
                    if out is not None:
                        out[len(ok)] = pixels
                    ok.append(i)
                bar.advance()

    if workers <= 1 or len(paths) < 64:
        collect(map(try_decode, jobs))
    else:
        # fork is safe here (the children only run PIL and numpy, never torch's OpenMP), and
        # unlike spawn it does not re-import the caller's __main__ script.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            collect(pool.imap(try_decode, jobs, chunksize=16))
    return None if out is None else out[: len(ok)], ok, skipped
