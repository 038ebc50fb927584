"""`photoclass serve`: a local web page and JSON API that predict dropped photos."""

from photoclass.serve.app import PredictServer

__all__ = ["PredictServer"]
