"""What `photoclass check` reports: one `Finding` per problem, each of a `Kind` that states
the rule that flagged it (thresholds included), and the `CheckResult` that holds them all.

Every finding has a confidence in [0, 1]. What it measures depends on the kind (the
out-of-sample probability of the suggested class for a mislabelled photo, 1.0 for a byte-identical
copy, how far past its threshold a photo's score lies for the others; each kind's `rule`
says which), and one number decides what `fix=True` moves: findings of a kind that is
quarantined, on a file, at `min_confidence` or above.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The pretrained model whose features describe the photos (`photoclass.checking.features`).
DEFAULT_MODEL = "efficientnet-lite0"
# What `fix=True` moves by default: a mislabelled photo whose out-of-sample probability of
# another class is 0.9 or more, a byte-identical or nearly identical copy, an off-topic photo
# well past the threshold. Lower it to move more, after looking at the report.
FIX_CONFIDENCE = 0.9

GROUPS = {
    "layout": "Layout",
    "files": "Unreadable files",
    "duplicates": "Duplicates and leakage",
    "labels": "Labels",
    "quality": "Image quality",
    "manifest": "Manifest and folder",
}


@dataclass(frozen=True)
class Kind:
    """A kind of finding: its name (`finding.kind`), its title, the group it is shown in,
    whether `fix=True` moves its photos into the quarantine, and the rule that flags them."""

    name: str
    title: str
    group: str
    quarantine: bool
    rule: str


@dataclass(frozen=True)
class Finding:
    """One problem with one file or folder of the dataset.

    `split` and `label` say where the file lies (`label` is its class folder); `suggested`
    is the class a mislabelled photo looks like; `other` is the photo a duplicate repeats."""

    kind: str
    path: Path
    confidence: float
    action: str
    detail: str
    split: str | None = None
    label: str | None = None
    suggested: str | None = None
    other: Path | None = None

    def to_dict(self, root: Path) -> dict[str, Any]:
        """JSON-ready, paths relative to the dataset folder `root`."""
        return {
            "kind": self.kind,
            "path": relative(self.path, root),
            "confidence": round(float(self.confidence), 4),
            "action": self.action,
            "detail": self.detail,
            "split": self.split,
            "label": self.label,
            "suggested": self.suggested,
            "other": None if self.other is None else relative(self.other, root),
        }


@dataclass(frozen=True)
class Move:
    """A file `fix` moved into the quarantine (or `undo` moved back)."""

    kind: str
    source: Path
    target: Path


@dataclass
class CheckResult:
    """Everything `check` found in a dataset, and what `fix` did about it."""

    root: Path
    classes: list[str]
    files: dict[str, dict[str, int]]  # split -> class folder -> files ("" for stray files)
    findings: list[Finding]
    kinds: dict[str, Kind]  # every kind checked for, found or not, in report order
    model: str
    min_confidence: float
    seconds: float
    moved: list[Move] = field(default_factory=list)
    report: Path | None = None

    @property
    def total_files(self) -> int:
        return sum(n for per_class in self.files.values() for n in per_class.values())

    def counts(self) -> Counter[str]:
        """Findings per kind."""
        return Counter(f.kind for f in self.findings)

    def to_fix(self) -> list[Finding]:
        """The findings `fix=True` moves: a quarantined kind, a file, confident enough; one per
        file (the first kind listed wins)."""
        seen: set[Path] = set()
        chosen = []
        for finding in self.findings:
            if (
                self.kinds[finding.kind].quarantine
                and finding.confidence >= self.min_confidence
                and finding.path not in seen
                and finding.path.is_file()
            ):
                seen.add(finding.path)
                chosen.append(finding)
        return chosen

    def found(self) -> str:
        """What was found, in a few words: "duplicates 2, off-topic 1" (or "nothing to report")."""
        counts = self.counts()
        return (
            ", ".join(f"{self.kinds[k].title.lower()} {n}" for k, n in counts.items()) or "nothing to report"
        )

    def headline(self) -> str:
        """One line: how much was checked, what was found, what was moved."""
        found = f"{len(self.findings)} finding(s): {self.found()}" if self.findings else self.found()
        line = f"checked {self.total_files} files in {len(self.classes)} classes in {self.seconds:.0f} s; {found}"
        if self.moved:
            line += f"; {len(self.moved)} file(s) moved to {self.root / '_quarantine'}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "classes": self.classes,
            "files": self.files,
            "model": self.model,
            "min_confidence": self.min_confidence,
            "seconds": round(self.seconds, 2),
            "counts": dict(self.counts()),
            "rules": {k.name: k.rule for k in self.kinds.values()},
            "findings": [f.to_dict(self.root) for f in self.findings],
            "moved": [
                {"kind": m.kind, "from": relative(m.source, self.root), "to": relative(m.target, self.root)}
                for m in self.moved
            ],
            "report": None if self.report is None else str(self.report),
        }


def relative(path: Path, root: Path) -> str:
    """`path` under `root`, in POSIX form (itself when outside it)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
