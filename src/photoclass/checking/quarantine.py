"""The quarantine: where a fix moves flagged photos, and how `undo` moves them back.

Nothing is deleted. A photo moves to `DATA/_quarantine/<kind>/<its path under DATA>` (every
stage ignores folders starting with `_`), and each move is first appended to
`DATA/_quarantine/log.jsonl` with what it changed in the manifest, so `undo` can reverse it
even after a crash half-way: a logged move that never happened is simply skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from photoclass.checking import agreement
from photoclass.checking.findings import Finding, Move
from photoclass.checking.layout import require_folder
from photoclass.files import unused_path

QUARANTINE = "_quarantine"
LOG = "log.jsonl"
log = logging.getLogger(__name__)


def quarantine(root: Path, findings: Sequence[Finding]) -> list[Move]:
    """Move the file of each finding into the quarantine, logging each move before making it."""
    root = Path(root)
    folder = root / QUARANTINE
    rows = agreement.manifest_rows(root) if agreement.has_manifest(root) else {}
    moves: list[Move] = []
    for finding in findings:
        source = finding.path
        target = unused_path(folder / finding.kind / source.relative_to(root))
        row = rows.get(source.stem)
        # The manifest's own photo, not a copy of it elsewhere: only then is its row changed.
        kept = row is not None and row["status"] == "ok" and source == agreement.home(root, row)
        entry = {
            "kind": finding.kind,
            "from": source.relative_to(root).as_posix(),
            "to": target.relative_to(root).as_posix(),
            "manifest": row if kept else None,
        }
        folder.mkdir(exist_ok=True)
        with open(folder / LOG, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        if kept:
            error = agreement.QUARANTINED.format(kind=finding.kind)
            agreement.update_rows(
                root, [{"id": row["id"], "status": "rejected", "error": error, "split": None}]
            )
        moves.append(Move(finding.kind, source, target))
    return moves


def undo(root: Path) -> list[Move]:
    """Move every quarantined file back where it was, newest first, restoring the manifest rows
    a fix changed. A file whose place is taken again is left in the quarantine (and in the log)."""
    root = require_folder(root)
    folder = root / QUARANTINE
    entries = _entries(folder / LOG)
    moves: list[Move] = []
    left: list[dict[str, Any]] = []
    restore: list[dict[str, Any]] = []
    for entry in reversed(entries):
        quarantined, original = root / entry["to"], root / entry["from"]
        if not os.path.lexists(quarantined):
            if not os.path.lexists(original):
                log.warning("%s is neither in the quarantine nor back in place; removed by hand?", original)
            continue  # logged but never moved (an interrupted fix), or already put back
        if os.path.lexists(original):
            log.warning("left %s in the quarantine: %s exists again", quarantined, original)
            left.append(entry)
            continue
        original.parent.mkdir(parents=True, exist_ok=True)
        os.replace(quarantined, original)
        if entry["manifest"] is not None:
            restore.append(entry["manifest"])
        moves.append(Move(entry["kind"], quarantined, original))
    if restore and agreement.has_manifest(root):
        agreement.update_rows(root, restore)
    if left:
        (folder / LOG).write_text("".join(json.dumps(e) + "\n" for e in reversed(left)), encoding="utf-8")
    else:
        (folder / LOG).unlink(missing_ok=True)
    _remove_empty(folder)
    return moves


def _entries(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _remove_empty(folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()
