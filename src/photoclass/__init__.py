"""photoclass: collect labelled photos, train a CNN, evaluate it honestly, predict.

>>> import photoclass
>>> photoclass.train("data/cats-owls", "models/cats-owls")            # doctest: +SKIP
>>> photoclass.evaluate("models/cats-owls", "data/cats-owls/val")     # doctest: +SKIP
>>> photoclass.predict("models/cats-owls", ["photo.jpg"])             # doctest: +SKIP
>>> photoclass.serve("models/cats-owls").run()                        # doctest: +SKIP
"""

from typing import Any

from photoclass.errors import BundleError, ConfigError, DatasetError, FlickrError, PhotoclassError

__all__ = [
    "BundleError",
    "ConfigError",
    "DatasetError",
    "FlickrError",
    "PhotoclassError",
    "collect",
    "evaluate",
    "export",
    "load_model",
    "predict",
    "report",
    "serve",
    "train",
]
__version__ = "0.1.0"

_API = {"collect", "evaluate", "export", "load_model", "predict", "report", "serve", "train"}


def __getattr__(name: str) -> Any:
    # The API pulls in torch (~1 s); import it on first use so `photoclass --help` and
    # `photoclass collect` start instantly.
    if name in _API:
        from photoclass import api

        return getattr(api, name)
    raise AttributeError(f"module 'photoclass' has no attribute {name!r}")
