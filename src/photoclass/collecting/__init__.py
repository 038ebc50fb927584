"""Collect labelled photos from Flickr: search, download, validate, de-duplicate, split.

    >>> from photoclass.collecting import collect
    >>> from photoclass.config import CollectConfig
    >>> collect(CollectConfig(classes=("cat", "owl")), Path("data/cats-owls"), key)  # doctest: +SKIP

Parts, each usable alone: `flickr` (the API client), `download` (fetch + validate + atomic
write), `dedup` (sha256 and perceptual hashes), `manifest` (SQLite record, attribution),
`split` (layout and the grouped, stratified split); `collector` wires them.
"""

from photoclass.collecting.collector import ClassCounts, CollectSummary, collect
from photoclass.collecting.manifest import summarize

__all__ = ["ClassCounts", "CollectSummary", "collect", "summarize"]
