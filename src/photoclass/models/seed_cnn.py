"""seed-cnn: the reference tutorial's Keras CNN, layer for layer.

Conv(32)-ReLU-MaxPool, Conv(64)-ReLU-MaxPool, Conv(128)-ReLU-MaxPool, Flatten, Dense(64)-ReLU,
Dropout(0.5), Dense(1)+sigmoid; RMSprop, binary cross-entropy, batch 5, 5 epochs, 300x300
input rescaled to [0, 1], augmented with shear 0.2, zoom 0.2 and horizontal flips.
See shared/reference/reference-system.md.

Two changes of arithmetic, not of function, make it train faster on CPUs:
- each block pools before its ReLU: max-pooling commutes with ReLU (both outputs and
  gradients are the same), and the ReLU then touches a quarter of the values;
- mixed precision (`precision="auto"`): the convolutions compute in bfloat16 where the CPU
  has it, while the 10M-weight dense layer stays in float32 (casting its weights and their
  gradient every step costs more than bfloat16 saves on a 5-row matrix product).
"""

from __future__ import annotations

import torch
from torch import nn

from photoclass.config import recipe
from photoclass.models.classifier import ImageClassifier
from photoclass.models.heads import classifier
from photoclass.models.registry import ModelCfg, register_model

# The tutorial's values: the one place they are written down.
REFERENCE = recipe(
    image_size=300,
    batch_size=5,
    epochs=5,
    lr=1e-3,  # Keras RMSprop default
    optimizer="rmsprop",
    patience=5,  # the tutorial had no early stopping: never trigger within its 5 epochs
    hflip=0.5,
    zoom=0.2,
    # Keras' ImageDataGenerator reads shear_range in degrees, so the tutorial's 0.2 is 0.2°.
    shear=0.2,
    precision="auto",
)


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3), nn.MaxPool2d(2), nn.ReLU(inplace=True)]


class Float32Linear(nn.Linear):
    """A dense layer that computes in float32 even under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


@register_model(
    "seed-cnn",
    recipe=REFERENCE,
    cfg=ModelCfg(any_size=False),  # rescale 1/255 only
    summary="the reference tutorial's CNN and recipe (300 px, RMSprop, batch 5, 5 epochs)",
)
def seed_cnn(num_classes: int, image_size: int, pretrained: bool = False) -> ImageClassifier:
    side = image_size
    for _ in range(3):  # each 3x3 valid conv loses 2 pixels, each pool halves
        side = (side - 2) // 2
    convs = [*_conv(3, 32), *_conv(32, 64), *_conv(64, 128)]
    return ImageClassifier(
        *convs,
        nn.Flatten(),
        Float32Linear(128 * side * side, 64),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        classifier(64, num_classes),
        features=len(convs),
    )
