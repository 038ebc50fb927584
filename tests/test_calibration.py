"""Temperature scaling and the calibration numbers, on toy models whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from photoclass.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
    softmax,
)


def toy(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(true logits); the model reports the true logits times `scale`
    (scale > 1: overconfident, < 1: underconfident)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 2, (n, 3))
    probs = softmax(true)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return true * scale, labels


@pytest.mark.parametrize("scale", [4.0, 0.4])
def test_a_miscalibrated_model_gets_calibrated(scale: float) -> None:
    logits, labels = toy(4000, scale)
    before = expected_calibration_error(labels, softmax(logits))
    temperature = fit_temperature(logits, labels)
    after = expected_calibration_error(labels, softmax(logits, temperature))
    assert temperature == pytest.approx(scale, rel=0.15)  # it undoes the distortion
    assert before > 0.08 and after < 0.03
    assert nll(logits, labels, temperature) < nll(logits, labels)
    # Dividing by a positive number never changes a label.
    assert (softmax(logits, temperature).argmax(1) == logits.argmax(1)).all()


def test_a_calibrated_model_keeps_a_temperature_near_one() -> None:
    logits, labels = toy(4000, 1.0, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)


def test_no_mistakes_on_validation_does_not_promise_certainty() -> None:
    # Perfectly separated validation photos: plain log-loss would push T to its lower bound
    # (probabilities of exactly 1); the fit keeps the doubt 500 photos leave.
    labels = np.r_[np.zeros(250, int), np.ones(250, int)]
    logits = np.c_[np.zeros(500), np.where(labels == 1, 8.0, -8.0)]
    temperature = fit_temperature(logits, labels)
    top = softmax(logits, temperature).max(1)
    assert top.min() > 0.99 and top.max() < 0.9995


def test_nothing_to_fit_gives_one() -> None:
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, int)) == 1.0
    assert fit_temperature(np.ones((5, 2)), np.zeros(5, int)) == 1.0  # one class only


def test_ece_and_reliability_on_known_numbers() -> None:
    # 10 photos at 90% confidence, 8 right: one bin, gap 0.1.
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(labels, probs) == pytest.approx(0.1)
    rows = reliability(labels, probs)
    assert rows == {"confidence": [pytest.approx(0.9)], "accuracy": [0.8], "share": [1.0]}
    # Perfect: confidence 1, always right.
    assert expected_calibration_error(np.zeros(4, int), np.tile([1.0, 0.0], (4, 1))) == 0.0
