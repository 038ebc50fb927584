"""`photoclass.check` on real photos with known problems: each finding kind's recall (share of
the injected problems found) and precision (share of the findings that were injected), above
thresholds stated here. The sample's own photos may hold natural problems (a rare owl, a
burst of near-identical shots), which count against precision: the thresholds leave room
for a few."""

from __future__ import annotations

import pytest

from photoclass.checking.findings import FIX_CONFIDENCE

from .conftest import Checked, found

pytestmark = pytest.mark.slow

# kind: (least recall, least precision)
THRESHOLDS = {"mislabelled": (0.9, 0.75), "leakage": (1.0, 0.8), "off_topic": (0.6, 0.5)}


@pytest.mark.parametrize("kind", sorted(THRESHOLDS))
def test_recall_and_precision(noisy_checked: Checked, kind: str) -> None:
    expected = noisy_checked.truth.expected()[kind]
    flagged = found(noisy_checked.result, kind)
    hits = flagged & expected
    recall, precision = len(hits) / len(expected), len(hits) / max(1, len(flagged))
    least_recall, least_precision = THRESHOLDS[kind]
    print(
        f"{kind}: {len(expected)} injected, {len(flagged)} flagged, recall {recall:.2f}, precision {precision:.2f}"
    )
    assert recall >= least_recall, sorted(expected - flagged)
    assert precision >= least_precision, sorted(flagged - expected)


def test_every_drawing_is_off_topic(noisy_checked: Checked) -> None:
    assert noisy_checked.truth.drawn <= found(noisy_checked.result, "off_topic")


def test_mislabelled_photos_get_their_true_class_suggested(noisy_checked: Checked) -> None:
    flipped = noisy_checked.truth.flipped
    suggested = {f.path: f.suggested for f in noisy_checked.result.findings if f.kind == "mislabelled"}
    hits = set(suggested) & set(flipped)
    assert hits and all(suggested[p] == flipped[p] for p in hits)


def test_leakage_names_the_training_copy(noisy_checked: Checked) -> None:
    leaked = noisy_checked.truth.leaked
    others = {f.path: f.other for f in noisy_checked.result.findings if f.kind == "leakage"}
    assert all(others[copy] == original for copy, original in leaked.items())
    reencoded = {
        f.path: f.confidence for f in noisy_checked.result.findings if f.path in noisy_checked.truth.reencoded
    }
    assert reencoded and all(c < 1.0 for c in reencoded.values())  # not byte-identical: not certain


def test_confidences_and_what_a_fix_would_move(noisy_checked: Checked) -> None:
    result = noisy_checked.result
    assert all(0.0 <= f.confidence <= 1.0 for f in result.findings)
    movable = result.to_fix()
    assert movable and all(
        f.confidence >= FIX_CONFIDENCE and result.kinds[f.kind].quarantine for f in movable
    )
    assert len({f.path for f in movable}) == len(movable)  # a file moves once
    assert not any(result.kinds[f.kind].group == "quality" for f in movable)  # advice only
    assert result.moved == [] and not (noisy_checked.root / "_quarantine").exists()  # no fix asked
