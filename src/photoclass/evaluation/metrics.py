"""Honest numbers: accuracy with its 95% Wilson interval, loss, per-class precision/recall/F1,
the confusion matrix, and ROC for two classes. Pure numpy, so every stage can share it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from photoclass.evaluation.calibration import expected_calibration_error


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a proportion; unlike the normal approximation it stays inside [0, 1]
    and is honest for small test sets (20 photos at 85% -> 64%..95%)."""
    if total == 0:
        return (0.0, 1.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    low = 0.0 if correct == 0 else centre - half  # exact ends, free of rounding error
    high = 1.0 if correct == total else centre + half
    return (low, high)


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()) if len(labels) else float("nan")


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    return matrix


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False/true positive rates over every threshold, and the area under them (positives:
    label 1). Tied scores move along a diagonal, as sklearn does."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tps = np.cumsum(labels)[distinct]
    fps = (distinct + 1) - tps
    positives, negatives = labels.sum(), len(labels) - labels.sum()
    tpr = np.r_[0.0, tps / max(positives, 1)]
    fpr = np.r_[0.0, fps / max(negatives, 1)]
    auc = float(np.trapezoid(tpr, fpr)) if positives and negatives else float("nan")
    return fpr, tpr, auc


def compute_metrics(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Every metric `evaluate` reports, as plain JSON-ready values."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = probs.argmax(axis=1)
    k, n = len(classes), len(labels)
    correct = int((preds == labels).sum())
    matrix = confusion_matrix(labels, preds, k)
    per_class = {}
    for i, name in enumerate(classes):
        tp, predicted, actual = matrix[i, i], matrix[:, i].sum(), matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    low, high = wilson_interval(correct, n)
    result: dict[str, Any] = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else float("nan"),
        "accuracy_ci95": [low, high],
        "loss": log_loss(labels, probs),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "classes": list(classes),
        "confusion_matrix": matrix.tolist(),
        "ece": expected_calibration_error(labels, probs),
    }
    if k == 2:
        fpr, tpr, auc = roc_curve(labels, probs[:, 1])
        result["roc_auc"] = auc
        result["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return result


def headline(metrics: dict[str, Any]) -> str:
    """The one-line summary: accuracy, its 95% interval, on how many photos."""
    low, high = metrics["accuracy_ci95"]
    return (
        f"accuracy {metrics['accuracy']:.1%} (95% CI {low:.1%}-{high:.1%}) on {metrics['n']} photos, "
        f"loss {metrics['loss']:.3f}"
        + (f", ROC AUC {metrics['roc_auc']:.3f}" if "roc_auc" in metrics else "")
    )
