from __future__ import annotations

import numpy as np
import pytest

from photoclass.evaluation.metrics import compute_metrics, roc_curve, wilson_interval


def test_wilson_interval_matches_the_reference_example() -> None:
    # The tutorial's 85% on 20 photos: "roughly 64%-95%".
    low, high = wilson_interval(17, 20)
    assert low == pytest.approx(0.640, abs=0.002) and high == pytest.approx(0.948, abs=0.002)
    assert wilson_interval(500, 500)[1] == 1.0 and wilson_interval(500, 500)[0] == pytest.approx(
        0.9924, abs=1e-3
    )
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_roc_auc_equals_the_pairwise_ranking_probability() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(labels * 0.3 + rng.random(200), 1)  # rounding makes ties
    _, _, auc = roc_curve(labels, scores)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auc == pytest.approx(pairs, abs=1e-9)


def test_compute_metrics_counts() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 0, 1, 1, 2, 2]] * 0.8 + 0.2 / 3
    m = compute_metrics(labels, probs, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["correct"] == 4 and m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["a"] == {
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert "roc_auc" not in m
    expected_loss = -np.mean(np.log(probs[np.arange(6), labels]))
    assert m["loss"] == pytest.approx(expected_loss)
