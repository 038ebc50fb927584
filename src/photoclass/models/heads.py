"""Output layers shared by the models."""

from __future__ import annotations

import torch
from torch import nn


class BinaryLogit(nn.Module):
    """One sigmoid logit `z`, emitted as the two logits `[0, z]`.

    softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)], and cross-entropy on it equals binary
    cross-entropy on sigmoid(z): the reference's `Dense(1) + sigmoid + binary_crossentropy`
    exactly, while every consumer downstream sees plain softmax logits."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(z), z], dim=1)


def classifier(in_features: int, num_classes: int) -> nn.Sequential:
    """Dense(1)+sigmoid for two classes (as the reference), Dense(K)+softmax otherwise."""
    if num_classes == 2:
        return nn.Sequential(nn.Linear(in_features, 1), BinaryLogit())
    return nn.Sequential(nn.Linear(in_features, num_classes))
