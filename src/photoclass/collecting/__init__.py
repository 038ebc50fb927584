"""Collect labelled photos from Flickr: search, download, validate, de-duplicate, split.

    >>> from photoclass.collecting import collect
    >>> from photoclass.config import CollectConfig
    >>> collect(CollectConfig(classes=("cat", "owl")), Path("data/cats-owls"), key)  # doctest: +SKIP

`photoclass.collect` is the same with the Python API's conveniences. Parts, each usable
alone: `flickr` (the API client, the key lookup, `check_key`), `licenses` (licence names
against Flickr's live table), `retry` (backoff), `download` (concurrent, paced fetching into
a sink, through a validator), `validate` (is a body a whole photo; its hashes), `dedup`
(sha256 and perceptual hashes), `manifest` (SQLite record, attribution), `split` (layout,
safe names, and the grouped, stratified split); `collector` wires them.
"""

from photoclass.collecting.collector import ClassCounts, CollectSummary, collect
from photoclass.collecting.flickr import KeyCheck, check_key
from photoclass.collecting.manifest import summarize

__all__ = ["ClassCounts", "CollectSummary", "KeyCheck", "check_key", "collect", "summarize"]
