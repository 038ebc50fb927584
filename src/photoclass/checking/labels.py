"""Labels: photos that look like another class, and classes far smaller than the others.

Mislabelled photos are found the way cleanlab's `find_label_issues` finds them, from
out-of-sample predicted probabilities: each photo's probabilities come from a linear probe
(multinomial logistic regression on the frozen pretrained features) trained on the other
folds of a stratified K-fold split, so no photo is judged by a model that saw its label.
Then confident learning: a class's threshold is the mean probability its own photos get;
photos whose probability of another class reaches that class's threshold fill the
off-diagonal of the confident joint, which (calibrated to the class sizes) says how many
photos of each class look like each other class; that many are flagged per pair, those with
the largest margin first, and never one that the probes give its own label.
"""

from __future__ import annotations

import numpy as np
import torch

from photoclass.checking.findings import Finding, Kind
from photoclass.checking.layout import Photo
from photoclass.progress import NO_PROGRESS, Progress

FOLDS = 5
# L2 penalty on the probe's weights (features standardised): strong, because 1,280 features
# for a few thousand photos overfit the mislabelled ones; 0.3 gave the cleanest out-of-fold
# probabilities on cats-owls with 5% flipped labels (0.01: 5x as many false alarms).
WEIGHT_DECAY = 0.3
LBFGS_STEPS = 100
IMBALANCE = 0.5  # a class of train/ with fewer than half the photos of the largest

KINDS = [
    Kind(
        "mislabelled",
        "Likely mislabelled",
        "labels",
        True,
        f"confident learning (as cleanlab's find_label_issues) on out-of-sample probabilities from "
        f"{FOLDS}-fold linear probes on pretrained features; confidence = the probability of the suggested class",
    ),
    Kind(
        "class_imbalance",
        "Class imbalance",
        "labels",
        False,
        f"a class of train/ with fewer than {IMBALANCE:.0%} of the photos of the largest one",
    ),
]


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    seed: int = 0,
    progress: Progress = NO_PROGRESS,
) -> np.ndarray:
    """(N, n_classes) probabilities, each row from a probe trained without that photo's fold."""
    folds = _stratified_folds(labels, FOLDS, seed)
    probs = np.zeros((len(labels), n_classes), np.float32)
    x, y = torch.from_numpy(np.asarray(features, np.float32)), torch.from_numpy(labels.astype(np.int64))
    with progress.task(f"label probes ({FOLDS} folds)", FOLDS) as bar:
        for fold in range(FOLDS):
            held = torch.from_numpy(folds == fold)
            if held.any():
                probs[held.numpy()] = _probe(x[~held], y[~held], x[held], n_classes)
            bar.advance()
    return probs


def _stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        assignment[members] = np.arange(len(members)) % folds
    return assignment


def _probe(x: torch.Tensor, y: torch.Tensor, query: torch.Tensor, n_classes: int) -> np.ndarray:
    """Fit a multinomial logistic regression (full-batch L-BFGS) and predict `query`."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, query = (x - mean) / std, (query - mean) / std
    weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=LBFGS_STEPS, history_size=20, line_search_fn="strong_wolfe"
    )

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(x @ weight + bias, y) + WEIGHT_DECAY * weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        return torch.softmax(query @ weight + bias, dim=1).numpy()


def label_issues(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flagged, suggested class) per photo, by confident learning (prune by noise rate)."""
    n, k = probs.shape
    counts = np.bincount(labels, minlength=k)
    thresholds = np.array([probs[labels == c, c].mean() if counts[c] else 1.0 for c in range(k)])
    # The confident joint: given label x the class a photo confidently looks like.
    above = probs >= thresholds
    confident = np.where(above, probs, -1).argmax(1)
    joint = np.zeros((k, k))
    np.add.at(joint, (labels[above.any(1)], confident[above.any(1)]), 1)
    # Calibrated so that each row sums to the class's size: how many of its photos look like each class.
    rows = joint.sum(1, keepdims=True)
    expected = np.divide(joint * counts[:, None], rows, out=np.zeros_like(joint), where=rows > 0)
    flagged = np.zeros(n, bool)
    suggested = np.full(n, -1)
    best = np.zeros(n)
    for given in range(k):
        members = np.flatnonzero(labels == given)
        for other in range(k):
            take = int(round(expected[given, other])) if other != given else 0
            if take <= 0:
                continue
            margin = probs[members, other] - probs[members, given]
            for i in members[np.argsort(-margin, kind="stable")[:take]]:
                flagged[i] = True
                if probs[i, other] > best[i]:
                    best[i], suggested[i] = probs[i, other], other
    flagged &= probs.argmax(1) != labels  # never a photo the probes give its own label
    return flagged, suggested


def mislabelled_findings(
    photos: list[Photo], probs: np.ndarray, labels: np.ndarray, classes: list[str]
) -> list[Finding]:
    flagged, suggested = label_issues(probs, labels)
    findings = []
    for i in np.flatnonzero(flagged):
        p, other = photos[i], classes[suggested[i]]
        findings.append(
            Finding(
                "mislabelled",
                p.path,
                float(probs[i, suggested[i]]),
                f"look at it: if it is a photo of {other}, move it to {p.split}/{other}/; if of neither, quarantine it",
                f"labelled {p.label}; probes that never saw it say {other} {probs[i, suggested[i]]:.0%}, "
                f"{p.label} {probs[i, labels[i]]:.0%}",
                split=p.split,
                label=p.label,
                suggested=other,
            )
        )
    return findings


def imbalance_findings(photos: list[Photo], classes: list[str], root_train) -> list[Finding]:
    """A finding per class of train/ far smaller than the largest."""
    counts = {c: 0 for c in classes}
    for p in photos:
        if p.split == "train" and p.label in counts:
            counts[p.label] += 1
    if not counts:
        return []
    largest, most = max(counts.items(), key=lambda kv: kv[1])
    return [
        Finding(
            "class_imbalance",
            root_train / name,
            1 - n / most,
            f"add photos of {name}, or train with `balance=True` (the loss weighted by class size)",
            f"{n} photos, {n / most:.0%} of {largest}'s {most}",
            split="train",
            label=name,
        )
        for name, n in counts.items()
        if n < IMBALANCE * most
    ]
