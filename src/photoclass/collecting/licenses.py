"""Licence names as a person writes them, matched against Flickr's live licence table.

The table comes from `flickr.photos.licenses.getInfo` (ids 0-16 in 2025, and it has grown
before), so nothing here lists ids. A name is matched by what it means: "CC BY-SA 2.0",
"cc-by-sa-2.0" and "Attribution-ShareAlike License" are one licence; a Creative Commons name
without a version ("CC BY-SA") means every version the table has; "CC0", "CC0 1.0" and
"Public Domain Dedication" are the CC0 entry, "PDM" and "Public Domain Mark 1.0" the mark.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from photoclass.errors import ConfigError

Table = Mapping[int, tuple[str, str]]  # id -> (name, url)

# The words of a Creative Commons licence name, short or spelt out as Flickr once did.
_ELEMENTS = {
    "by": "by",
    "attribution": "by",
    "nc": "nc",
    "noncommercial": "nc",
    "nd": "nd",
    "noderivs": "nd",
    "noderivatives": "nd",
    "sa": "sa",
    "sharealike": "sa",
}
_FILLER = {"cc", "creative", "commons", "license", "licence", "international", "generic", "unported"}


def _words(text: str) -> list[str]:
    return re.findall(r"cc0|[a-z]+|\d+(?:\.\d+)?", text.lower())


def meaning(name: str) -> tuple[str, frozenset[str], str | None] | None:
    """What a licence name means: ("cc", elements, version or None), ("cc0", {}, None) or
    ("pdm", {}, None); None for a name that is none of these ("All Rights Reserved")."""
    words = _words(name)
    joined = "".join(words)
    if joined.startswith("cc0") or "cc0" in words or "publicdomaindedication" in joined:
        return "cc0", frozenset(), None
    if "publicdomainmark" in joined or words == ["pdm"]:
        return "pdm", frozenset(), None
    elements = {_ELEMENTS[w] for w in words if w in _ELEMENTS}
    versions = [w for w in words if w[0].isdigit()]
    rest = [w for w in words if w not in _ELEMENTS and w not in _FILLER and not w[0].isdigit()]
    if "by" not in elements or rest or len(versions) > 1:
        return None
    version = versions[0] if versions else None
    if version is not None and "." not in version:
        version += ".0"  # "CC BY 4" is 4.0
    return "cc", frozenset(elements), version


def _matches(wanted: tuple[str, frozenset[str], str | None], offered: str) -> bool:
    have = meaning(offered)
    if have is None or have[:2] != wanted[:2]:
        return False
    return wanted[2] is None or have[2] == wanted[2]


def license_ids(spec: str | None, table: Table) -> str | None:
    """`license` ("4,5,9", or names such as "CC BY 2.0,CC0") as Flickr's comma list of ids,
    or None for no filter. An unknown name is a `ConfigError` listing the table."""
    if not spec:
        return None
    exact = {"".join(_words(name)): i for i, (name, _) in table.items()}
    ids: set[int] = set()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        wanted = meaning(part)
        found = {int(part)} if part.isdigit() and int(part) in table else set()
        found |= {exact[key]} if (key := "".join(_words(part))) in exact else set()
        if wanted is not None:
            found |= {i for i, (name, _) in table.items() if _matches(wanted, name)}
        if not found:
            known = "; ".join(f"{i} {name}" for i, (name, _) in sorted(table.items()))
            raise ConfigError(f"unknown license '{part}' in `license`; use ids or names: {known}")
        ids |= found
    return ",".join(str(i) for i in sorted(ids))
