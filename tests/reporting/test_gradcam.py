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
from photoclass.models import ImageClassifier, create_model
from photoclass.reporting.gradcam import decision_margin, grad_cam, overlay

from ..conftest import require_real_photos


@pytest.mark.parametrize(
    ("architecture", "size", "channels", "side"),
    [
        ("small-cnn", 48, 256, 3),  # the last conv stage; the global pool after it is 1x1
        ("seed-cnn", 64, 128, 6),  # the last max-pool, before Flatten
        ("efficientnet-lite0", 64, 1280, 2),  # conv_head + bn2, before the pool
    ],
)
def test_features_are_the_last_feature_map(architecture: str, size: int, channels: int, side: int) -> None:
    model = create_model(architecture, 2, size, pretrained=False).eval()
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, size, size))
        assert features.shape == (1, channels, side, side)
        assert model.forward_head(features).shape == (1, 2)


def brightness_model() -> ImageClassifier:
    """Feature map = summed channels; class 1 scores its mean, class 0 its negative."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[-1.0], [1.0]]))
    return ImageClassifier(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head, features=2).eval()


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


def test_the_margin_is_the_log_odds_of_the_decision() -> None:
    logits = torch.tensor([[0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    torch.testing.assert_close(
        decision_margin(logits, torch.tensor([1, 0, 0])), torch.tensor([2.0, 0.0, 3.0])
    )
    three = torch.tensor([[1.0, 2.0, 3.0]])
    expected = 3.0 - torch.logsumexp(torch.tensor([1.0, 2.0]), 0)
    torch.testing.assert_close(decision_margin(three, torch.tensor([2])), expected[None])


@pytest.mark.parametrize("fixture", ["trained_binary", "trained_three"])
def test_photos_predicted_as_every_class_get_heat(fixture: str, request: pytest.FixtureRequest) -> None:
    # A two-class head emits logits [0, z]: explaining the first class by its own logit
    # (always 0) gave empty maps for every photo predicted as that class.
    if fixture == "trained_binary":
        require_real_photos()  # the few-second model on drawn stand-ins may call them all one class
    bundle = load_bundle(request.getfixturevalue(fixture))
    data = request.getfixturevalue("cats_owls_tiny" if fixture == "trained_binary" else "shapes3")
    photos = sorted(p for p in data.rglob("*.jpg"))
    pixels = np.stack([decode_image(p, bundle.image_size) for p in photos])
    with torch.no_grad():
        logits = bundle.model(bundle.normalize.batch(pixels))
    predicted, confidence = logits.argmax(1).numpy(), logits.softmax(1).max(1).values.numpy()
    for k in range(len(bundle.classes)):
        assert (predicted == k).any(), f"no photo predicted as {bundle.classes[k]}"
        # The 4 it is surest of. One photo's map may rightly be flat (all its channels'
        # weighted evidence negative, which Grad-CAM's ReLU zeroes); the bug gave flat maps
        # to every photo of the class.
        surest = np.flatnonzero(predicted == k)[np.argsort(-confidence[predicted == k])[:4]]
        heat = grad_cam(bundle.model, pixels[surest], bundle.normalize)
        assert (heat.max(axis=(1, 2)) > 0.99).any(), bundle.classes[k]


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
