"""Grad-CAM: the right layer, the right shape and range, and heat where the evidence is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from photoclass.bundle import load_bundle
from photoclass.data.decode import decode_image
from photoclass.data.preprocess import Normalize
from photoclass.models import create_model
from photoclass.reporting.gradcam import cam_layer, grad_cam, overlay


@pytest.mark.parametrize(
    ("architecture", "size", "expected"),
    [
        ("small-cnn", 48, 3),  # the last conv stage; the global pool after it is 1x1
        ("seed-cnn", 64, 8),  # the last max-pool, before Flatten
        ("efficientnet-lite0", 64, -3),  # conv_head + bn2, before pool+flatten and the head
    ],
)
def test_cam_layer_is_the_last_feature_map(architecture: str, size: int, expected: int) -> None:
    model = create_model(architecture, 2, size, pretrained=False).eval()
    assert cam_layer(model, size) == expected % len(model)


def brightness_model() -> nn.Sequential:
    """Feature map = summed channels; class 1 scores its mean, class 0 its negative."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[-1.0], [1.0]]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def test_heat_lies_where_the_evidence_is() -> None:
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    images[0, 2:10, 20:30] = 255  # a bright patch top right
    images[1, 24:30, 4:12] = 255  # and one bottom left
    identity = Normalize((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    heat = grad_cam(brightness_model(), images, identity, targets=[1, 1])
    assert heat.shape == (2, 32, 32)
    for cam, (rows, cols) in zip(
        heat, [(slice(2, 10), slice(20, 30)), (slice(24, 30), slice(4, 12))], strict=True
    ):
        inside = np.zeros((32, 32), bool)
        inside[rows, cols] = True
        assert cam.max() == pytest.approx(1.0)
        assert cam[inside].mean() > 0.8 and cam[~inside].mean() < 0.1
    # Brightness is evidence against class 0: ReLU leaves nothing to show.
    assert not grad_cam(brightness_model(), images, identity, targets=[0, 0]).any()


def test_heat_maps_of_a_trained_model(trained_three: Path, shapes3: Path) -> None:
    bundle = load_bundle(trained_three)
    photos = [shapes3 / "test" / "circle" / "circle-0.jpg", shapes3 / "test" / "triangle" / "triangle-0.jpg"]
    pixels = np.stack([decode_image(p, bundle.image_size) for p in photos])
    heat = grad_cam(bundle.model, pixels, bundle.normalize)
    assert heat.shape == (2, bundle.image_size, bundle.image_size)
    assert heat.dtype == np.float32 and heat.min() >= 0 and heat.max() <= 1
    assert heat.max(axis=(1, 2)) == pytest.approx([1.0, 1.0]) and not heat.min(axis=(1, 2)).any()
    assert not np.allclose(heat[0], heat[1], atol=0.05)  # two photos, two maps
    # Batching changes nothing: each photo gets its own gradient.
    alone = grad_cam(bundle.model, pixels[1:], bundle.normalize)
    np.testing.assert_allclose(alone[0], heat[1], atol=1e-5)


def test_overlay_blends_the_heat_over_the_photo() -> None:
    photo = np.full((64, 64, 3), 128, dtype=np.uint8)
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[:4] = 1.0  # top half hot
    blended = overlay(photo, heat)
    assert blended.shape == photo.shape and blended.dtype == np.uint8
    top, bottom = blended[4:20].reshape(-1, 3).mean(0), blended[44:60].reshape(-1, 3).mean(0)
    assert top[0] > top[2] and bottom[2] > bottom[0]  # red where hot, blue where cold
