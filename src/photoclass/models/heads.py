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


def linear_map(head: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    """A `classifier` head as the K-class linear map it computes: weight (K, D), bias (K,).
    A two-class head (`[0, z]`) is rows 0 and z's."""
    linear = head[0]
    weight, bias = linear.weight.detach().float(), linear.bias.detach().float()
    if isinstance(head[-1], BinaryLogit):
        return torch.cat([torch.zeros_like(weight), weight]), torch.cat([torch.zeros_like(bias), bias])
    return weight.clone(), bias.clone()


@torch.no_grad()
def set_linear_map(head: nn.Sequential, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Make a `classifier` head compute the K-class linear map (`weight` (K, D), `bias` (K,)),
    up to a constant per photo, which softmax ignores: a two-class head keeps row 1 minus row 0."""
    linear = head[0]
    if isinstance(head[-1], BinaryLogit):
        weight, bias = weight[1:] - weight[:1], bias[1:] - bias[:1]
    linear.weight.copy_(weight.to(linear.weight))
    linear.bias.copy_(bias.to(linear.bias))
