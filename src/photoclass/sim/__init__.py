"""A local, Flickr-compatible server over synthetic photos: for tests, benchmarks and the
offline demo. See `server.py` for the API it speaks and `corpus.py` for the photos."""

from photoclass.sim.corpus import Corpus, object_kind, render_photo
from photoclass.sim.server import Faults, SimServer

__all__ = ["Corpus", "Faults", "SimServer", "object_kind", "render_photo"]
