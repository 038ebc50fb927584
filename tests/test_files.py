"""`atomic_write`: the file is the old one or the whole new one, never a part; and both the
file and the rename reach the disk before it returns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photoclass import files
from photoclass.files import atomic_write


def test_bytes_text_and_writer_functions_land_whole(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a.bin", b"\x00\x01")
    atomic_write(tmp_path / "b.txt", "chouette ✓")
    atomic_write(tmp_path / "c.bin", lambda temp: temp.write_bytes(b"written by a library"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "chouette ✓"
    assert (tmp_path / "c.bin").read_bytes() == b"written by a library"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model.json"
    atomic_write(target, "old")

    def half_then_fail(temp: Path) -> None:
        temp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename refused"):
        atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_the_file_and_its_folder_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", recording_fsync)
    atomic_write(tmp_path / "photo.jpg", b"\xff\xd8")
    atomic_write(tmp_path / "weights", lambda temp: temp.write_bytes(b"w"))
    temp_names = [Path(p).name for p in synced[::2]]
    assert all(name.startswith(".") and name.endswith(".part") for name in temp_names), synced
    assert synced[1::2] == [str(tmp_path)] * 2, "the folder is synced after each rename"


def test_a_batch_written_without_fsync_is_whole_and_synced_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(files.os, "fsync", lambda fd: calls.append("fsync"))
    monkeypatch.setattr(files.os, "sync", lambda: calls.append("sync"))
    for i in range(5):
        atomic_write(tmp_path / f"{i}.jpg", b"\xff\xd8" * i, durable=False)
    files.sync_all()
    assert calls == ["sync"]
    assert [(tmp_path / f"{i}.jpg").read_bytes() for i in range(5)] == [b"\xff\xd8" * i for i in range(5)]
    assert len(list(tmp_path.iterdir())) == 5
