"""One error family. Everything a user can cause is a `PhotoclassError` whose message is a
single line naming the problem and the fix, in the Python API's terms: a parameter is named
in backticks as the API spells it (`` `overwrite=True` ``, `` `batch_size` ``). The command
line translates those into its flags (`--overwrite`, `--batch-size`), prints the line and
exits 1; no traceback reaches a user.

    PhotoclassError
    ├── ConfigError           a bad option value, config file or combination of options
    │   └── OutputExistsError     the output folder already holds a finished or unfinished run
    ├── DatasetError          a data folder that does not follow DATA/{train,val,test}/<class>/
    ├── BundleError           a model bundle that is missing, invalid or tampered with
    ├── FlickrError           an error answered by the Flickr API, with Flickr's numeric code
    ├── NetworkError          a host that keeps refusing or cannot be reached
    ├── DependencyError       an optional dependency (an extra) is not installed
    ├── ExportError           an exported graph that does not compute what the model computes
    └── DistributedError      a multi-process launch that is misconfigured
"""

from __future__ import annotations


class PhotoclassError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class ConfigError(PhotoclassError):
    """A bad option value, config file or combination of options."""


class OutputExistsError(ConfigError):
    """The output folder already holds a run: finished (`unfinished=False`) or one that can be
    resumed (`unfinished=True`)."""

    def __init__(self, message: str, *, path: str, unfinished: bool) -> None:
        super().__init__(message)
        self.path, self.unfinished = path, unfinished


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


class NetworkError(PhotoclassError):
    """A host that keeps refusing (rate limits, server errors) or cannot be reached."""


class DependencyError(PhotoclassError):
    """An optional dependency is missing; `extra` names the photoclass extra that installs it."""

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class ExportError(PhotoclassError):
    """An exported model that does not compute what the PyTorch model computes."""


class DistributedError(PhotoclassError):
    """A multi-process (torchrun) launch that is misconfigured."""
