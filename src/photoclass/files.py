"""Files that are whole or absent: the one way photoclass writes a file that a later run trusts
(model bundles, checkpoints, ONNX exports, the decode cache, downloaded photos, the
attribution table); and a free name for a file moved beside others (`unused_path`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PART = ".part"  # the suffix of temporary files; `collecting.split.remove_partials` sweeps them


def atomic_write(
    path: Path, content: bytes | str | Callable[[Path], object], *, durable: bool = True
) -> None:
    """Write `path` so that it holds either its old content or all of the new, even if the
    process is killed or the machine loses power half-way.

    `content` is the bytes (or text, written as UTF-8) to write, or a function that writes
    the file at the temporary path it is given (`safetensors.torch.save_file`, `onnx.save`).
    The temporary file is flushed to the disk (fsync) before it is renamed over `path`, and
    the folder after, so the rename itself survives a power cut; on any error the temporary
    file is removed and the error raised.

    `durable=False` skips both fsyncs, for many small files that one `sync_all()` makes
    durable together before anything records them as written (the downloader's photos: a
    sync per photo cost a third of the download rate). Until then a kill still leaves the
    old content or the new, but a power cut may leave an empty or partial file.
    """
    path = Path(path)
    # Beside `path`, so the rename never crosses file systems; hidden, and one per process.
    temp = path.with_name(f".{path.name}.{os.getpid()}{PART}")
    try:
        if callable(content):
            content(temp)
            if durable:
                with open(temp, "rb+") as written:
                    os.fsync(written.fileno())
        else:
            data = content.encode("utf-8") if isinstance(content, str) else content
            with open(temp, "wb") as out:
                out.write(data)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _sync_folder(path.parent)


def sync_all() -> None:
    """Flush everything written so far to the disk, files and renames (one `sync`): what
    makes a batch of `atomic_write(..., durable=False)` files durable."""
    if hasattr(os, "sync"):  # POSIX; elsewhere there is no cheaper whole-batch flush
        os.sync()


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: the folder's entry list is data too)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform whose folders cannot be opened (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def unused_path(path: Path) -> Path:
    """`path`, or `name-1.jpg`, `name-2.jpg` ... when something (a link included) is already there."""
    candidate, n = path, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
