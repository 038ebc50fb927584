"""EfficientNet-Lite0 in plain torch, parameter for parameter timm's `tf_efficientnet_lite0`.

The same layers, the same TensorFlow "same" padding on the strided convolutions and the same
parameter names (`blocks.2.0.conv_pw.weight`), so weights move between the two unchanged;
`tests/test_models.py` checks that both compute the same features. Written out rather than
imported from timm because `import timm` also imports torchvision's detection ops and
`torch._dynamo` (~1.5 s here): most of the 4 s a cold `photoclass predict MODEL one.jpg`
may take. EfficientNet: Tan & Le, 2019 (https://arxiv.org/abs/1905.11946); the Lite variant
has ReLU6, no squeeze-excitation, and a stem and head that do not scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Each stage: (block, repeats, kernel, stride of its first block, expansion, output channels).
STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM, NUM_FEATURES = 32, 1280


class Conv2dSame(nn.Conv2d):
    """A strided convolution with TensorFlow's "same" padding: the padding depends on the
    input size, and an odd pixel of it goes to the right and bottom."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            size = int(size)  # a constant in an exported graph (its height and width are fixed)
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pad += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pad))


def conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:  # "same" padding is then symmetric and static
        return nn.Conv2d(cin, cout, kernel, 1, (kernel - 1) // 2, groups=groups, bias=False)
    return Conv2dSame(cin, cout, kernel, stride, 0, groups=groups, bias=False)


class BatchNormAct(nn.BatchNorm2d):
    """Batch norm with TensorFlow's epsilon, then ReLU6 when `act` (timm's BatchNormAct2d)."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels, eps=1e-3)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk conv, then pointwise 1x1 projection (the first block)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw, self.bn1 = conv(cin, cin, kernel, stride, groups=cin), BatchNormAct(cin)
        self.conv_pw, self.bn2 = conv(cin, cout, 1), BatchNormAct(cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return y + x if self.skip else y


class InvertedResidual(nn.Module):
    """1x1 expansion, depthwise kxk conv, 1x1 projection, residual when shapes allow (MBConv)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.conv_pw, self.bn1 = conv(cin, mid, 1), BatchNormAct(mid)
        self.conv_dw, self.bn2 = conv(mid, mid, kernel, stride, groups=mid), BatchNormAct(mid)
        self.conv_pwl, self.bn3 = conv(mid, cout, 1), BatchNormAct(cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(self.conv_pw(x))
        y = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(y))))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """The ImageNet network: stem, 7 stages of blocks, 1x1 head conv, average pool, classifier."""

    num_features = NUM_FEATURES

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv_stem, self.bn1 = conv(3, STEM, 3, 2), BatchNormAct(STEM)
        stages, cin = [], STEM
        for kind, repeats, kernel, stride, expand, cout in STAGES:
            blocks = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(cin, cout, kernel, s))
                else:
                    blocks.append(InvertedResidual(cin, cout, kernel, s, expand))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head, self.bn2 = conv(cin, NUM_FEATURES, 1), BatchNormAct(NUM_FEATURES)
        self.classifier = nn.Linear(NUM_FEATURES, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn1(self.conv_stem(x)))
        x = self.bn2(self.conv_head(x))
        return self.classifier(x.mean((2, 3)))
