"""A local, Flickr-compatible server over synthetic photos: for tests, benchmarks and the
offline demo (`photoclass.simulator()` starts one). See `server.py` for the API it speaks and
the faults it injects, `corpus.py` for the photos, and `tables.py` for its own copy of
Flickr's size and licence tables."""

from photoclass.sim.corpus import Corpus, object_kind, render_photo
from photoclass.sim.server import Faults, SimServer

__all__ = ["Corpus", "Faults", "SimServer", "object_kind", "render_photo"]
