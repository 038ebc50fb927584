"""The split, for any kept photos: every photo gets one split; no owner and no near-duplicate
group spans two splits; each class is divided in the asked shares, exactly when every group is a
single photo and within the largest group otherwise; the order of the input does not matter;
and photos added by a later run never move the ones already placed."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from photoclass.collecting.dedup import hamming
from photoclass.collecting.split import SPLITS, Member, assign_splits

from .conftest import examples

DISTANCE = 10  # `group_distance`: this close = near-duplicates


@st.composite
def kept_photos(draw: st.DrawFn, first_id: int = 1000, max_size: int = 80) -> list[Member]:
    """Photos of a few classes and owners; some pictures re-encoded (a few bits flipped)."""
    classes = draw(st.lists(st.sampled_from(["cat", "owl", "eagle"]), min_size=1, max_size=3, unique=True))
    owners = [f"{k}@N01" for k in range(draw(st.integers(1, 40)))] + [""]  # "" = owner unknown
    pictures = draw(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=30))
    photos = []
    for i in range(draw(st.integers(0, max_size))):
        flips = draw(st.sets(st.integers(0, 63), max_size=draw(st.sampled_from([0, 3, 8, 12, 30]))))
        phash = draw(st.sampled_from(pictures)) ^ sum(1 << bit for bit in flips)
        photos.append(
            Member(
                str(first_id + i),
                draw(st.sampled_from(classes)),
                draw(st.sampled_from(owners)),
                f"{phash:016x}",
            )
        )
    return photos


@st.composite
def shares(draw: st.DrawFn) -> tuple[float, float, float]:
    train, val, test = draw(st.integers(1, 10)), draw(st.integers(0, 10)), draw(st.integers(0, 10))
    total = train + val + test
    return train / total, val / total, test / total


def groups(photos: list[Member], by_owner: bool) -> list[set[str]]:
    """Ids that must share a split: linked by owner or by near-identical pictures."""
    parent = {p.id: p.id for p in photos}

    def root(i: str) -> str:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, p in enumerate(photos):
        for q in photos[a + 1 :]:
            if (by_owner and p.owner and p.owner == q.owner) or hamming(p.phash, q.phash) <= DISTANCE:
                parent[root(p.id)] = root(q.id)
    found: dict[str, set[str]] = {}
    for p in photos:
        found.setdefault(root(p.id), set()).add(p.id)
    return list(found.values())


def targets(
    photos: list[Member], fractions: tuple[float, float, float], test_per_class: int | None
) -> Counter:
    """The asked shares per class: test first (or `test_per_class`), then val, the rest train."""
    asked: Counter[tuple[str, str]] = Counter()
    for folder, n in Counter(p.folder for p in photos).items():
        test = min(n, test_per_class) if test_per_class is not None else round(n * fractions[2])
        val = min(n - test, round(n * fractions[1]))
        asked |= {("test", folder): test, ("val", folder): val, ("train", folder): n - test - val}
    return asked


@settings(max_examples=examples(60))
@given(
    photos=kept_photos(),
    fractions=shares(),
    test_per_class=st.none() | st.integers(0, 20),
    by_owner=st.booleans(),
    seed=st.integers(0, 3),
    order=st.randoms(use_true_random=False),
)
def test_any_photos_split_whole_groups_in_the_asked_shares(
    photos: list[Member],
    fractions: tuple[float, float, float],
    test_per_class: int | None,
    by_owner: bool,
    seed: int,
    order,
) -> None:
    options = dict(
        fractions=fractions,
        test_per_class=test_per_class,
        seed=seed,
        group_by_owner=by_owner,
        group_distance=DISTANCE,
    )
    split = assign_splits(photos, **options)
    assert set(split) == {p.id for p in photos} and set(split.values()) <= set(SPLITS)

    linked = groups(photos, by_owner)
    for group in linked:
        assert len({split[i] for i in group}) == 1, "a group of one owner or near-duplicates spans splits"

    got = Counter((split[p.id], p.folder) for p in photos)
    largest = max((len(g) for g in linked), default=0)
    for key, asked in targets(photos, fractions, test_per_class).items():
        if largest == 1:
            assert got[key] == asked, f"{key}: {got[key]} photos, {asked} asked"
        else:
            assert abs(got[key] - asked) <= largest, f"{key}: {got[key]} photos, {asked} asked"

    shuffled = list(photos)
    order.shuffle(shuffled)
    assert assign_splits(shuffled, **options) == split


@settings(max_examples=examples(60))
@given(
    before=kept_photos(first_id=1000, max_size=50),
    added=kept_photos(first_id=5000, max_size=30),
    fractions=shares(),
    by_owner=st.booleans(),
)
def test_photos_added_later_never_move_placed_ones_and_join_their_group(
    before: list[Member], added: list[Member], fractions: tuple[float, float, float], by_owner: bool
) -> None:
    options = dict(fractions=fractions, group_by_owner=by_owner, group_distance=DISTANCE)
    first = assign_splits(before, **options)
    second = assign_splits(before + added, existing=first, **options)
    assert {i: second[i] for i in first} == first
    for group in groups(before + added, by_owner):
        placed = {first[i] for i in group if i in first}
        if len(placed) == 1:  # the new photos' group was already in one split: they join it
            assert {second[i] for i in group} == placed
        elif not placed:  # a group of new photos only: placed whole
            assert len({second[i] for i in group}) == 1
