"""Off-topic photos: far, in pretrained-feature space, from every class.

A photo's distance to a class is the distance to its k-th nearest photo of that class,
divided by the same distance for a typical member of the class (the median over its members,
each measured without itself): 1 is as close as the class's own photos are to each other.
Its score is that ratio for the nearest class, so a photo is off-topic only when it is
unusually far from all of them, whatever the classes are called.

The distances are measured after projecting the L2-normalised features on their 64 main
directions (PCA), which keeps what tells photos apart and drops the many directions that
carry noise. k grows with the class (2% of its photos, 10 to 50): a group of similar strays
(a batch of drawings, twenty eagles among the owls) is closer to each other than to the class
and must not be its own neighbourhood, so k has to exceed the group.

What it catches and what it cannot: photos unlike anything in the dataset (drawings, a dog
among cats and owls) stand far out; strays close to a class (eagles among owls) score in the
same range as the class's own unusual photos (a rare owl species), so some are found and some
are not. Measured on cats-owls: bench/check.py.

`outlier_scores` takes reference features (a labelled dataset) and query features (the
same photos, or new ones) so that a trained model can use it to say "none of these".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from photoclass.checking.findings import Finding, Kind
from photoclass.checking.layout import Photo
from photoclass.prediction.novelty import knn_distance, l2_normalize

DIMENSIONS = 64  # PCA directions kept: 16 to 128 all found the drawings; 64 found the most eagles
K_SHARE, K_MIN, K_MAX = 0.02, 10, 50
# Score threshold: 1% of cats-owls's own photos score above 1.22, drawings 1.48 and more,
# eagles 1.1 to 1.4.
OFF_TOPIC = 1.3
# Confidence: 0.5 at the threshold, 1 at this score; 0.9 (a fix's default) at 1.42, higher than
# any of cats-owls's own photos scored in bench/check.py (1.35 at most), lower than any drawing.
CERTAIN = 1.45

KINDS = [
    Kind(
        "off_topic",
        "Off-topic",
        "labels",
        True,
        f"in pretrained features, farther than {OFF_TOPIC:g}x a typical photo's distance from every class "
        f"(k-th nearest neighbour, k = {K_SHARE:.0%} of the class, {K_MIN} to {K_MAX}); confidence 0.5 at "
        f"{OFF_TOPIC:g}x, 1 at {CERTAIN:g}x",
    )
]


@dataclass(frozen=True)
class Space:
    """Where distances are measured: a centre and the main directions of reference features."""

    mean: np.ndarray
    directions: np.ndarray  # (d, D)

    def project(self, features: np.ndarray) -> np.ndarray:
        return ((l2_normalize(features) - self.mean) @ self.directions.T).astype(np.float32)


def fit_space(reference: np.ndarray, dimensions: int = DIMENSIONS) -> Space:
    unit = l2_normalize(reference)
    mean = unit.mean(0)
    _, _, directions = np.linalg.svd(unit - mean, full_matrices=False)
    return Space(mean, directions[:dimensions])


def neighbours(class_size: int) -> int:
    return int(np.clip(round(K_SHARE * class_size), K_MIN, K_MAX))


def outlier_scores(
    reference: np.ndarray, labels: np.ndarray, n_classes: int, query: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(score, nearest class) for each query row (`query=None`: the reference rows themselves).

    `score` is the distance to the nearest class over a typical member's distance to it. A
    class with fewer than `K_MIN + 1` photos has no typical distance: it is left out, and its
    own photos (`query=None`) score 0, since nothing can be said of them."""
    space = fit_space(reference)
    ref = space.project(reference)
    same = query is None
    points = ref if same else space.project(query)
    ratios = np.full((len(points), n_classes), np.inf, np.float32)
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        if len(members) <= K_MIN:
            if same:
                ratios[members, c] = 0.0
            continue
        k = neighbours(len(members))
        own = knn_distance(ref[members], ref[members], k, same=True)
        distances = knn_distance(ref[members], points, k)
        if same:  # each member measured without itself, as for the typical distance
            distances[members] = own
        typical = max(float(np.median(own)), 1e-12)
        ratios[:, c] = distances / typical
    scores = ratios.min(1)
    scores[np.isinf(scores)] = 0.0  # no class to compare with
    return scores, ratios.argmin(1)


def off_topic_findings(
    photos: list[Photo], scores: np.ndarray, nearest: np.ndarray, classes: list[str]
) -> list[Finding]:
    findings = []
    for i in np.flatnonzero(scores > OFF_TOPIC):
        p = photos[i]
        confidence = 0.5 + 0.5 * min(1.0, (scores[i] - OFF_TOPIC) / (CERTAIN - OFF_TOPIC))
        findings.append(
            Finding(
                "off_topic",
                p.path,
                float(confidence),
                "quarantine it if it shows none of the classes (or add the class it shows)",
                f"{scores[i]:.2f}x farther from the nearest class ({classes[nearest[i]]}) than its own photos are",
                split=p.split,
                label=p.label,
            )
        )
    return findings
