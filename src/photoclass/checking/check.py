"""`check_dataset`: every check on a dataset folder, in one pass over its photos.

Each photo is decoded once (through the decode cache, at the pretrained model's size) and
described once by the pretrained model; the quality statistics, the hashes, the nearest
neighbours and the cross-validated linear probes all work from those two arrays.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from photoclass.checking import agreement, duplicates, labels, layout, outliers, quality
from photoclass.checking.features import DEFAULT_MODEL, embed_files, feature_size
from photoclass.checking.findings import FIX_CONFIDENCE, GROUPS, CheckResult, Finding, Kind
from photoclass.checking.quarantine import quarantine
from photoclass.data.cache import decode_all
from photoclass.data.folder import SPLITS
from photoclass.errors import ConfigError
from photoclass.progress import NO_PROGRESS, Progress

# Every kind, in the order findings are listed (and a file in several is quarantined as the first).
_MODULES = (layout, duplicates, outliers, labels, quality, agreement)
KINDS: dict[str, Kind] = {
    k.name: k
    for k in sorted((k for m in _MODULES for k in m.KINDS), key=lambda k: list(GROUPS).index(k.group))
}


def check_dataset(
    root: Path,
    *,
    model: str = DEFAULT_MODEL,
    fix: bool = False,
    min_confidence: float = FIX_CONFIDENCE,
    follow_symlinks: bool = False,
    progress: Progress = NO_PROGRESS,
) -> CheckResult:
    """Check `root` (a `DATA/{train,val,test}/<class>/` folder) and, with `fix=True`, move the
    files of confident findings into `root/_quarantine/` (see `photoclass.checking.quarantine`).
    Symbolic links leading outside `root` are skipped unless `follow_symlinks=True`."""
    started = time.perf_counter()
    if not 0 <= min_confidence <= 1:
        raise ConfigError(f"`min_confidence` must be between 0 and 1, not {min_confidence}")
    size = feature_size(model)
    inventory = layout.take_inventory(Path(root), follow_symlinks=follow_symlinks)
    root, photos, classes = inventory.root, inventory.photos, inventory.classes
    findings: list[Finding] = list(inventory.findings)

    decoded = decode_all([p.path for p in photos], size, progress=progress)
    findings += layout.unreadable_findings(photos, decoded.skipped)
    sizes = [quality.header_size(p.path) for p in photos]
    findings += quality.quality_findings(photos, quality.measure(decoded.images, decoded.ok, sizes, progress))
    sha, hashes = duplicates.fingerprints(photos, decoded.images, decoded.ok, progress)
    findings += duplicates.duplicate_findings(root, photos, sha, hashes)
    findings += _content_findings(photos, classes, decoded.images, decoded.ok, model, progress)
    findings += labels.imbalance_findings(photos, classes, root / "train")
    findings += agreement.manifest_findings(root, photos)

    order = list(KINDS)
    findings.sort(key=lambda f: (order.index(f.kind), -f.confidence, str(f.path)))
    result = CheckResult(
        root=root,
        classes=classes,
        files=_files(photos),
        findings=findings,
        kinds=KINDS,
        model=model,
        min_confidence=min_confidence,
        seconds=0.0,
    )
    if fix:
        result.moved = quarantine(root, result.to_fix())
    result.seconds = time.perf_counter() - started
    return result


def _content_findings(
    photos: list[layout.Photo],
    classes: list[str],
    images: np.ndarray,
    decoded: list[int],
    model: str,
    progress: Progress,
) -> list[Finding]:
    """Off-topic and mislabelled photos, from pretrained features of the photos of known classes."""
    known = [k for k, i in enumerate(decoded) if photos[i].known]
    if len(classes) < 1 or len(known) < 2:
        return []
    features = embed_files([photos[i].path for i in decoded], images, model, progress)[known]
    index = [decoded[k] for k in known]
    members = [photos[i] for i in index]
    given = np.array([classes.index(p.label) for p in members])
    scores, nearest = outliers.outlier_scores(features, given, len(classes))
    findings = outliers.off_topic_findings(members, scores, nearest, classes)
    # Off-topic photos would teach the probes a class they are not: judge labels without them.
    on_topic = scores <= outliers.OFF_TOPIC
    counts = np.bincount(given[on_topic], minlength=len(classes))
    if len(classes) >= 2 and (counts >= labels.FOLDS).sum() >= 2:
        kept = np.flatnonzero(on_topic)
        probs = labels.out_of_fold_probabilities(features[kept], given[kept], len(classes), progress=progress)
        findings += labels.mislabelled_findings([members[i] for i in kept], probs, given[kept], classes)
    return findings


def _files(photos: list[layout.Photo]) -> dict[str, dict[str, int]]:
    files: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        for p in photos:
            if p.split == split:
                files.setdefault(split, {}).setdefault(p.label or "", 0)
                files[split][p.label or ""] += 1
    return files
