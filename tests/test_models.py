"""The packaged ImageNet weights map into EfficientNet-Lite0 with every key matched, and
photoclass's plain-torch EfficientNet-Lite0 computes what timm's `tf_efficientnet_lite0` does."""

from __future__ import annotations

import pytest
import timm
import torch

from photoclass.data.decode import decode_image
from photoclass.models import create_model
from photoclass.models.efficientnet_lite import EfficientNetLite0
from photoclass.models.pretrained import imagenet_weights, timm_key

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_key_mapping_examples() -> None:
    assert timm_key("_conv_stem.weight") == "conv_stem.weight"
    assert timm_key("_blocks.0._depthwise_conv.weight") == "blocks.0.0.conv_dw.weight"
    assert timm_key("_blocks.3._bn1.weight") == "blocks.2.0.bn2.weight"
    assert timm_key("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    assert timm_key("_fc.bias") == "classifier.bias"


def test_imagenet_weights_recognise_a_cat(shared_data) -> None:
    net = EfficientNetLite0()
    net.load_state_dict(imagenet_weights(), strict=True)  # every key matched, none left over
    net.eval()
    cat = sorted((shared_data / "val" / "cat").iterdir())[0]
    x = torch.from_numpy(decode_image(cat, 224)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        top5 = net((x - 0.5) / 0.5).topk(5).indices[0].tolist()
    assert CAT_CLASSES & set(top5)


@pytest.mark.parametrize("size", [224, 161])  # odd sizes exercise the asymmetric "same" padding
def test_plain_torch_lite0_is_timms(size: int) -> None:
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(imagenet_weights())
    net.eval()
    ours = EfficientNetLite0()
    assert list(ours.state_dict()) == list(net.state_dict())  # same names, same order
    ours.load_state_dict(net.state_dict())
    ours.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), net(x), atol=1e-4, rtol=1e-4)


def test_flat_layout_matches_the_network() -> None:
    net = EfficientNetLite0()
    net.load_state_dict(imagenet_weights())
    net.eval()
    ours = create_model("efficientnet-lite0", 2, 224).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        features = net.bn2(net.conv_head(net.blocks(net.bn1(net.conv_stem(x))))).mean((2, 3))
        pooled = ours.forward_head(ours.forward_features(x), pre_logits=True)
        torch.testing.assert_close(pooled, features, atol=1e-5, rtol=1e-5)
    # Fine-tuning 2 blocks trains the last 2 of the 16, the head conv and the classifier.
    trained = ours.unfrozen(2)
    assert trained[0] is ours[15] and trained[2] is ours[17] and trained[-1] is ours.get_classifier()
    assert ours.unfrozen(0) == [ours.get_classifier()]
