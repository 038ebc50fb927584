"""`photoclass serve`: a local web page and JSON API that predict dropped photos."""

from photoclass.serving.app import PredictServer

__all__ = ["PredictServer"]
