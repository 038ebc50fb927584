"""One error family. Everything a user can cause is a `PhotoclassError` whose message is a
single line naming the problem and the fix; the CLI prints it and exits 1, no traceback."""

from __future__ import annotations


class PhotoclassError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class ConfigError(PhotoclassError):
    """A bad option value or config file."""


class DatasetError(PhotoclassError):
    """A dataset folder that does not follow the `DATA/{train,val,test}/<class>/` layout."""


class BundleError(PhotoclassError):
    """A model bundle (`model.safetensors` + `photoclass.json`) that is missing or invalid."""


class FlickrError(PhotoclassError):
    """An error answered by the Flickr API (`stat: fail`), with Flickr's numeric code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Flickr error {code}: {message}")
        self.code = code
        self.flickr_message = message
