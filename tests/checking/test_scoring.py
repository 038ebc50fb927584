"""The scoring behind mislabelled and off-topic findings, on made-up features and probabilities
where the right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photoclass.checking import labels, outliers
from photoclass.checking.layout import Photo
from photoclass.prediction.novelty import knn_distance


def _clusters(rng: np.random.Generator, per_class: int, dims: int = 40) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(0, 1, (2, dims)) * 3
    features = np.concatenate([c + rng.normal(0, 1, (per_class, dims)) for c in centres])
    return features.astype(np.float32), np.repeat([0, 1], per_class)


def test_confident_learning_flags_the_swapped_labels_only() -> None:
    rng = np.random.default_rng(0)
    given = np.repeat([0, 1, 2], 100)
    probs = np.full((300, 3), 0.02)
    probs[np.arange(300), given] = 0.96
    probs[:, :] += rng.uniform(0, 0.02, probs.shape)
    swapped = [3, 150, 250]  # these photos look like another class
    for i, looks_like in zip(swapped, [1, 2, 0], strict=True):
        probs[i] = 0.02
        probs[i, looks_like] = 0.96
    unsure = 77  # a photo the probes are torn about, but still give its own label
    probs[unsure] = [0.5, 0.45, 0.05]
    probs /= probs.sum(1, keepdims=True)
    flagged, suggested = labels.label_issues(probs, given)
    assert sorted(np.flatnonzero(flagged)) == swapped
    assert list(suggested[swapped]) == [1, 2, 0]


def test_out_of_fold_probabilities_find_a_flipped_label() -> None:
    rng = np.random.default_rng(1)
    features, given = _clusters(rng, 60)
    given[5] = 1  # a photo of class 0 labelled 1
    probs = labels.out_of_fold_probabilities(features, given, 2)
    assert probs.shape == (120, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert probs[5, 0] > 0.9  # judged by probes that never saw its label
    flagged, suggested = labels.label_issues(probs, given)
    assert list(np.flatnonzero(flagged)) == [5] and suggested[5] == 0


def test_a_far_photo_and_a_group_of_strays_are_off_topic() -> None:
    rng = np.random.default_rng(2)
    features, given = _clusters(rng, 300)
    far = rng.normal(0, 1, (1, 40)) * 3 + 30
    # Eight near-identical strays: a group closer to each other than to any class. They are
    # found only because k (2% of a class, at least 10) exceeds the group.
    group = rng.normal(0, 1, (1, 40)) * 3 + 12 + rng.normal(0, 0.1, (8, 40))
    strays = np.concatenate([far, group]).astype(np.float32)
    everything = np.concatenate([features, strays])
    labelled = np.concatenate([given, rng.integers(0, 2, len(strays))])
    scores, _ = outliers.outlier_scores(everything, labelled, 2)
    assert (scores[-len(strays) :] > outliers.OFF_TOPIC).all()
    assert (scores[: len(features)] > outliers.OFF_TOPIC).mean() < 0.02
    # New photos scored against a labelled reference (how a trained model can say "none of these"):
    new, _ = outliers.outlier_scores(features, given, 2, query=np.concatenate([features[:3], far]))
    assert list(new > outliers.OFF_TOPIC) == [False, False, False, True]


def test_the_k_th_neighbour_distance() -> None:
    points = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)
    assert list(knn_distance(points, points, 1, same=True)) == [1, 1, 2, 4]
    assert list(knn_distance(points, np.array([[2.0]], np.float32), 2)) == [1]


def test_a_class_too_small_to_judge_is_left_alone() -> None:
    rng = np.random.default_rng(3)
    features, given = _clusters(rng, 100)
    tiny = rng.normal(0, 1, (outliers.K_MIN, 40)).astype(np.float32) + 50  # far from both, few
    scores, _ = outliers.outlier_scores(
        np.concatenate([features, tiny]), np.r_[given, [2] * outliers.K_MIN], 3
    )
    assert (scores[-outliers.K_MIN :] == 0).all()
    assert (scores[:200] < outliers.OFF_TOPIC).mean() > 0.98


def test_a_class_with_under_half_the_photos_of_the_largest_is_imbalanced(tmp_path: Path) -> None:
    counts = {"cat": 100, "owl": 51, "dog": 49}
    photos = [Photo(tmp_path / c / f"{i}.jpg", "train", c, True) for c, n in counts.items() for i in range(n)]
    photos += [Photo(tmp_path / "val" / f"{i}.jpg", "val", "dog", True) for i in range(100)]  # train/ only
    [finding] = labels.imbalance_findings(photos, sorted(counts), tmp_path / "train")
    assert finding.path == tmp_path / "train" / "dog" and finding.detail == "49 photos, 49% of cat's 100"
    assert abs(finding.confidence - 0.51) < 1e-9 and "`balance=True`" in finding.action
