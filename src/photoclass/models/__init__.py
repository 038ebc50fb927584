"""Models, registered by name. Importing this package registers all of them."""

from photoclass.models import pretrained, seed_cnn, small_cnn  # noqa: F401  (registration)
from photoclass.models.classifier import ImageClassifier, PretrainedClassifier
from photoclass.models.registry import (
    ModelCfg,
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
)

__all__ = [
    "ImageClassifier",
    "ModelCfg",
    "ModelEntry",
    "PretrainedClassifier",
    "create_model",
    "get_model_entry",
    "list_models",
]
