"""The pretrained network's own classifier as a prior for the new head.

ImageNet's classifier already tells a great grey owl from a bald eagle, and keeps doing so on
photos unlike any of the user's training photos: on owls-eagles' real-world test photos it
alone (restricted to those two classes) scored 96.7% where a head trained on the training
photos scored 91.9%. When every user class has ImageNet counterparts
(`photoclass.models.imagenet.match_classes`), their classifier rows, averaged per class, form
a linear head of the same shape as the trained one, and the two are blended in weight space:
`(1 - prior) * trained + prior * imagenet`, the weight-space ensemble of WiSE-FT (Wortsman et
al., 2022, https://arxiv.org/abs/2109.01903), here between the zero-shot head and the probe.
It changes nothing else in the model: the bundle holds an ordinary head.

The prior is used only where it means something: a pretrained model whose backbone is still
the pretrained one (its classifier reads exactly those features), every class matched, and the
prior alone clearly better than chance on the validation photos (a name matched to the wrong
ImageNet classes, "apple" to "custard apple", shows there). Otherwise the trained head is kept
as it is, and the log and the bundle say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from photoclass.models.heads import linear_map, set_linear_map
from photoclass.models.imagenet import match_classes


@dataclass
class Prior:
    """The matched classifier rows, as a K-class linear map over the pre-logits."""

    weight: torch.Tensor  # (K, D)
    bias: torch.Tensor  # (K,)
    imagenet: list[list[int]]  # per user class, its ImageNet classes
    matched: str  # "eagle = bald eagle; owl = great grey owl"

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features.float() @ self.weight.T + self.bias

    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.logits(features).argmax(1) == labels).float().mean())


def find_prior(model: nn.Module, classes: list[str]) -> tuple[Prior | None, str]:
    """The prior for `classes`, or None and why there is none."""
    source_classifier = getattr(model, "source_classifier", None)
    source = source_classifier() if source_classifier is not None else None
    if source is None:
        return None, "the model has no pretrained classifier"
    match = match_classes(classes)
    if not match.usable:
        return None, match.describe(classes)
    weight = source.weight.detach().float().cpu()
    bias = source.bias.detach().float().cpu()
    return (
        Prior(
            torch.stack([weight[group].mean(0) for group in match.groups]),
            torch.stack([bias[group].mean() for group in match.groups]),
            match.groups,
            match.describe(classes),
        ),
        match.describe(classes),
    )


def good_enough(accuracy: float, classes: int) -> bool:
    """Clearly better than chance: at least halfway from chance (1/K) to always right."""
    return accuracy >= (1 + 1 / classes) / 2


def blend(head: nn.Sequential, prior: Prior, weight: float) -> None:
    """Set `head` to `(1 - weight) * head + weight * prior`, in weight space."""
    trained_w, trained_b = linear_map(head)
    set_linear_map(
        head,
        (1 - weight) * trained_w + weight * prior.weight.to(trained_w),
        (1 - weight) * trained_b + weight * prior.bias.to(trained_b),
    )


def record(prior: Prior | None, weight: float, reason: str, accuracy: float | None = None) -> dict[str, Any]:
    """What the bundle keeps under "prior": the weight used (0 when unused) and why."""
    entry: dict[str, Any] = {"weight": weight, "matched": reason}
    if prior is not None:
        entry["imagenet"] = prior.imagenet
    if accuracy is not None:
        entry["val_accuracy"] = accuracy
    return entry
