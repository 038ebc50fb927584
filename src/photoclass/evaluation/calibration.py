"""Probabilities that mean what they say: temperature scaling and how far from calibrated a
model is.

A network trained to low loss is usually overconfident: among photos it calls 99% sure, fewer
than 99% are right. Temperature scaling (Guo et al., 2017, https://arxiv.org/abs/1706.04599)
divides the logits by one number `T`, fitted to minimise the log-loss on validation photos; the
ranking of the classes, so every label, stays the same. Pure numpy, like `metrics`.
"""

from __future__ import annotations

import math

import numpy as np

BINS = 15  # reliability bins over [0, 1], as in Guo et al.
LOG_T = (-3.0, 4.0)  # temperatures searched: e^-3 (sharpen 20x) .. e^4 (soften 55x)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, smoothing: float = 0.0) -> float:
    """Mean negative log-likelihood of `labels` under softmax(logits / temperature); with
    `smoothing`, of targets that give that much of their mass evenly to every class."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1)
    log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    target = (1 - smoothing) * z[np.arange(len(labels)), labels] + smoothing * z.mean(axis=1)
    return float((log_norm - target).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the log-loss of `labels` (golden-section search on log T:
    the loss is smooth and has one minimum there). 1.0 when there is nothing to fit.

    n validation photos cannot show an error rate below about 1/n: with none wrong, plain
    log-loss keeps falling as T -> 0 and would promise certainty. So the targets are smoothed
    by 1/(n + 2), Laplace's rule of succession: a model right on all of them is taken to be
    wrong about once in n + 2 photos, and a model that does make errors is barely affected."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    smoothing = 1 / (len(labels) + 2)
    ratio = (math.sqrt(5) - 1) / 2
    low, high = LOG_T
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a), smoothing), nll(logits, labels, math.exp(b), smoothing)
    for _ in range(60):  # the bracket shrinks to 1e-12 of its width
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a), smoothing)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b), smoothing)
    return math.exp((low + high) / 2)


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> dict[str, list[float]]:
    """Per confidence bin (of the top probability): the mean confidence, the accuracy, and the
    share of photos; empty bins are left out."""
    confidence, hits = probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    rows: dict[str, list[float]] = {"confidence": [], "accuracy": [], "share": []}
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows["confidence"].append(float(confidence[inside].mean()))
            rows["accuracy"].append(float(hits[inside].mean()))
            rows["share"].append(float(inside.mean()))
    return rows


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> float:
    """The gap between confidence and accuracy, averaged over confidence bins weighted by how
    many photos fall in each (0 = perfectly calibrated)."""
    if len(labels) == 0:
        return float("nan")
    rows = reliability(np.asarray(labels), probs, bins)
    return float(
        sum(
            s * abs(c - a)
            for c, a, s in zip(rows["confidence"], rows["accuracy"], rows["share"], strict=True)
        )
    )
