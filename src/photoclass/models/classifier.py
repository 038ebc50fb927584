"""The contract every photoclass model keeps (timm's, scaled down), so training, Grad-CAM,
the pretrained probe and export never index into a network:

- `forward_features(x)`: the last feature map that still has a spatial layout, (N, C, H, W);
  Grad-CAM looks there;
- `forward_head(features, pre_logits=False)`: pooling and the rest of the head: the logits,
  or with `pre_logits=True` the (N, D) vector the classifier reads (the probe trains the
  classifier on those, computed once);
- `get_classifier()`: the last layer, what a new task replaces and the probe trains;
- `unfrozen(unfreeze)`: the layers fine-tuning trains; the rest stay frozen (no gradients,
  ImageNet batch-norm statistics). A model trained from scratch trains all of them;
- pretrained models also keep `source_classifier()`: the pretrained network's own classifier
  (ImageNet-1k) over the same pre-logits, the prior `photoclass.training.prior` draws on.

The layers are kept in one `nn.Sequential`, so weight names are those of bundles written
before this contract existed (`0.weight`, `3.conv_dw.weight`, ...); nothing outside the model
relies on the indexes.
"""

from __future__ import annotations

import torch
from torch import nn


class ImageClassifier(nn.Sequential):
    """`features` leading layers make the feature map; the layers after them, the head (the
    last one is the classifier)."""

    def __init__(self, *layers: nn.Module, features: int) -> None:
        super().__init__(*layers)
        if not 0 < features < len(layers):
            raise ValueError(f"features={features} must leave a head among {len(layers)} layers")
        self.features = features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in list(self)[: self.features]:  # (slicing would rebuild the Sequential)
            x = layer(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        for layer in list(self)[self.features : -1]:
            x = layer(x)
        return x if pre_logits else self[-1](x)

    def get_classifier(self) -> nn.Module:
        return self[-1]

    def unfrozen(self, unfreeze: int) -> list[nn.Module]:
        """Every layer: a model trained from scratch learns all of them (`unfreeze` applies to
        pretrained models, see `PretrainedClassifier`)."""
        return list(self)


class PretrainedClassifier(ImageClassifier):
    """A pretrained backbone whose last `unfreeze` blocks (of `blocks`, counted back from the
    end of the feature layers) are fine-tuned with the head; the earlier layers stay frozen."""

    def __init__(
        self, *layers: nn.Module, features: int, blocks: int, source: nn.Linear | None = None
    ) -> None:
        super().__init__(*layers, features=features)
        self.blocks = blocks  # unfreezable blocks, the last of which ends `features` (head conv aside)
        # The pretrained network's own classifier over the same pre-logits (ImageNet-1k, in
        # `photoclass.models.imagenet` order), kept outside the module tree: it is no part of
        # the new model's weights, only knowledge its head can start from.
        self.__dict__["_source"] = source

    def source_classifier(self) -> nn.Linear | None:
        """The pretrained classifier (ImageNet-1k) when the weights were loaded, else None."""
        return self.__dict__["_source"]

    def unfrozen(self, unfreeze: int) -> list[nn.Module]:
        if unfreeze <= 0:
            return [self.get_classifier()]
        # The layer after the last block (the 1x1 head conv) always trains with the blocks.
        start = self.features - 1 - min(unfreeze, self.blocks)
        return list(self)[start:]


class PreLogitsAndLogits(nn.Module):
    """A model's pre-logits (the vector its classifier reads, `forward_head(...,
    pre_logits=True)`) and its logits at once, concatenated (N, D + classes): one forward pass
    for a prediction and its novelty; `split` separates them."""

    def __init__(self, model: ImageClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return torch.cat([pre, self.model.get_classifier()(pre)], dim=1)

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-logits, logits) of a concatenated output."""
        return out[:, : self.width], out[:, self.width :]

    @property
    def width(self) -> int:
        """D, the length of the pre-logits vector (the classifier's input)."""
        first = next(m for m in self.model.get_classifier().modules() if isinstance(m, nn.Linear))
        return first.in_features
