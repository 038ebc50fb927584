"""photoclass: collect labelled photos, train a CNN, evaluate it honestly, predict.

>>> import photoclass
>>> photoclass.collect(["cat", "owl"], "data/cats-owls")              # doctest: +SKIP
>>> photoclass.train("data/cats-owls", "models/cats-owls")            # doctest: +SKIP
>>> photoclass.evaluate("models/cats-owls", "data/cats-owls/val")     # doctest: +SKIP
>>> photoclass.predict("models/cats-owls", ["photo.jpg"])             # doctest: +SKIP
>>> photoclass.run(["cat", "owl"], "runs/cats-owls")                  # doctest: +SKIP
>>> photoclass.serve("models/cats-owls").run()                        # doctest: +SKIP
"""

from typing import Any

from photoclass.errors import (
    BundleError,
    ConfigError,
    DatasetError,
    FlickrError,
    NetworkError,
    PhotoclassError,
)

# The API's functions, imported from `photoclass.api` on first use (see `__getattr__`).
_API = {
    "check",
    "check_key",
    "collect",
    "demo",
    "evaluate",
    "export",
    "load_model",
    "predict",
    "report",
    "run",
    "serve",
    "simulator",
    "train",
    "undo_check",
}
__all__ = [
    "BundleError",
    "ConfigError",
    "DatasetError",
    "FlickrError",
    "NetworkError",
    "PhotoclassError",
    *sorted(_API),
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, and the API imports each stage (torch: ~1 s) only when it is
    # called, so that `photoclass --help` and `photoclass collect` start instantly.
    if name in _API:
        from photoclass import api

        return getattr(api, name)
    raise AttributeError(f"module 'photoclass' has no attribute {name!r}")
