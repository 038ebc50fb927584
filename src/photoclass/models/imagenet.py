"""What a pretrained network already knows about the user's classes: their ImageNet-1k
counterparts, found by name.

`imagenet_classes.json` (package data) lists the 1000 classes in the order of the ImageNet
classifier that efficientnet-lite0's weights come with, each with its WordNet lemmas ("great grey
owl", "great gray owl", "Strix nebulosa") and `kind`, the head noun of its WordNet gloss ("large
dish-faced owl of ..." -> "owl"); `kinds` lists, for a few common words ("dog", "bird", "cat"),
the classes that are kinds of them. A user class matches, in order of preference:

1. a word of `kinds` ("dogs" -> the 118 dog breeds);
2. lemmas equal to its name ("kite" -> kite, not "box kite");
3. lemmas whose last word is its name, and classes whose kind it is ("owl" -> great grey owl,
   "eagle" -> bald eagle).

Names are compared in lower case, words only, plural or singular ("Owls", "great_grey_owl").
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any


@functools.cache
def _table() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("imagenet_classes.json").read_text("utf-8"))


def class_names() -> list[str]:
    """The 1000 ImageNet-1k class names (each class's first lemma), in classifier order."""
    return [c["names"][0] for c in _table()["classes"]]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _forms(name: str) -> set[str]:
    """A class name in lower case, words only, and its likely singulars ("owls" -> "owl")."""
    phrase = " ".join(_words(name))
    forms = {phrase}
    if phrase.endswith("ies"):
        forms.add(phrase[:-3] + "y")
    if phrase.endswith("es"):
        forms.add(phrase[:-2])
    if phrase.endswith("s") and not phrase.endswith("ss"):
        forms.add(phrase[:-1])
    return forms - {""}


def counterparts(name: str) -> list[int]:
    """The ImageNet-1k classes (indexes into the classifier) that `name` matches; [] if none."""
    forms, table = _forms(name), _table()
    for form in sorted(forms):
        if form in table["kinds"]:
            return list(table["kinds"][form])
    lemmas = [[" ".join(_words(lemma)) for lemma in c["names"]] for c in table["classes"]]
    exact = [i for i, names in enumerate(lemmas) if forms & set(names)]
    if exact:
        return exact
    return [
        i
        for i, (names, c) in enumerate(zip(lemmas, table["classes"], strict=True))
        if c["kind"] in forms or any(n.rsplit(" ", 1)[-1] in forms for n in names if " " in n)
    ]


@dataclass(frozen=True)
class Match:
    """The ImageNet counterparts of each user class, or why there are none to use."""

    groups: list[list[int]]  # per user class, its ImageNet classes (all non-empty when `usable`)
    missing: list[str]  # user classes without a counterpart

    @property
    def usable(self) -> bool:
        return not self.missing

    def describe(self, classes: list[str]) -> str:
        """One line for the log and the bundle: what matched, or which classes did not."""
        if self.missing:
            return f"no ImageNet counterpart for {', '.join(self.missing)}"
        names = class_names()

        def listed(group: list[int]) -> str:
            more = f" (+{len(group) - 3})" if len(group) > 3 else ""
            return ", ".join(names[i] for i in group[:3]) + more

        return "; ".join(f"{c} = {listed(g)}" for c, g in zip(classes, self.groups, strict=True))


def match_classes(classes: list[str]) -> Match:
    """Each user class's ImageNet counterparts. An ImageNet class two user classes claim goes to
    the more specific one ("owl" keeps great grey owl from "bird"), to neither on a tie; the
    match is usable when every class keeps at least one."""
    found = [counterparts(c) for c in classes]
    owner: dict[int, int | None] = {}
    for k, group in enumerate(found):
        for i in group:
            if i not in owner:
                owner[i] = k
            elif owner[i] is not None and len(found[owner[i]]) == len(group):
                owner[i] = None  # as specific as each other: nobody's
            elif owner[i] is not None and len(group) < len(found[owner[i]]):
                owner[i] = k
    groups = [[i for i in group if owner[i] == k] for k, group in enumerate(found)]
    return Match(groups, [c for c, g in zip(classes, groups, strict=True) if not g])
