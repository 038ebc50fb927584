"""The ImageNet counterparts of class names, and the head blended with them."""

from __future__ import annotations

import pytest
import torch

from photoclass.models import create_model
from photoclass.models.heads import classifier, linear_map, set_linear_map
from photoclass.models.imagenet import class_names, counterparts, match_classes
from photoclass.training.prior import Prior, blend, find_prior, good_enough


def names(name: str) -> list[str]:
    return [class_names()[i] for i in counterparts(name)]


def test_the_class_list_is_imagenet_1k_in_classifier_order() -> None:
    listed = class_names()
    assert len(listed) == 1000 and listed[0] == "tench" and listed[-1] == "toilet tissue"
    assert listed[22] == "bald eagle" and listed[24] == "great grey owl" and listed[281] == "tabby"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("owl", ["great grey owl"]),
        ("Owls", ["great grey owl"]),  # case and plural
        ("eagle", ["bald eagle"]),
        ("cats", ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"]),  # a kind
        ("kite", ["kite"]),  # an exact lemma wins over "box kite"-like heads
        ("great_grey_owl", ["great grey owl"]),
        ("sparrowhawk", []),
    ],
)
def test_class_names_find_their_counterparts(name: str, expected: list[str]) -> None:
    assert names(name) == expected


def test_dogs_and_birds_are_kinds() -> None:
    assert len(names("dogs")) == 118 and "golden retriever" in names("dog")
    assert "great grey owl" in names("bird") and "bald eagle" in names("bird")


def test_the_more_specific_class_keeps_a_shared_counterpart() -> None:
    match = match_classes(["bird", "owl"])
    assert match.usable
    bird, owl = match.groups
    assert owl == [24] and 24 not in bird and 22 in bird


def test_a_class_without_counterpart_makes_the_match_unusable() -> None:
    match = match_classes(["owl", "sparrowhawk"])
    assert (
        not match.usable
        and match.describe(["owl", "sparrowhawk"]) == "no ImageNet counterpart for sparrowhawk"
    )


@pytest.mark.parametrize("k", [2, 3])
def test_a_head_is_read_and_written_as_a_k_class_linear_map(k: int) -> None:
    torch.manual_seed(0)
    head = classifier(8, k)
    x = torch.randn(5, 8)
    weight, bias = linear_map(head)
    assert weight.shape == (k, 8)
    assert torch.allclose(torch.log_softmax(x @ weight.T + bias, 1), torch.log_softmax(head(x), 1), atol=1e-6)
    new_w, new_b = torch.randn(k, 8), torch.randn(k)
    set_linear_map(head, new_w, new_b)
    assert torch.allclose(
        torch.log_softmax(head(x), 1), torch.log_softmax(x @ new_w.T + new_b, 1), atol=1e-5
    )  # up to a constant per photo, which softmax ignores


def test_blending_is_a_weight_space_average() -> None:
    torch.manual_seed(0)
    head = classifier(8, 2)
    trained_w, trained_b = linear_map(head)
    prior = Prior(torch.randn(2, 8), torch.randn(2), [[0], [1]], "a = x; b = y")
    blend(head, prior, 0.25)
    x = torch.randn(6, 8)
    want = x @ (0.75 * trained_w + 0.25 * prior.weight).T + (0.75 * trained_b + 0.25 * prior.bias)
    assert torch.allclose(torch.log_softmax(head(x), 1), torch.log_softmax(want, 1), atol=1e-5)


def test_the_prior_comes_from_the_pretrained_classifier() -> None:
    model = create_model("efficientnet-lite0", 2, 224)
    prior, matched = find_prior(model, ["eagle", "owl"])
    source = model.source_classifier()
    assert matched == "eagle = bald eagle; owl = great grey owl"
    assert torch.equal(prior.weight, source.weight[[22, 24]]) and torch.equal(
        prior.bias, source.bias[[22, 24]]
    )
    # No prior where there is no pretrained classifier, or no match; each says why.
    assert find_prior(create_model("small-cnn", 2, 64), ["eagle", "owl"]) == (
        None,
        "the model has no pretrained classifier",
    )
    assert find_prior(model, ["circle", "square"])[0] is None
    # A bundle's model (weights loaded over it) carries none, and its state is unchanged.
    assert create_model("efficientnet-lite0", 2, 224, pretrained=False).source_classifier() is None
    assert not any("source" in key for key in model.state_dict())


def test_a_prior_must_be_clearly_better_than_chance() -> None:
    assert good_enough(0.9, 2) and not good_enough(0.7, 2)
    assert good_enough(0.7, 3) and not good_enough(0.6, 3)
