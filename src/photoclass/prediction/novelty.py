""" "None of these": does a photo look like any of the training photos?

A classifier always answers with one of its classes, even for a dog shown to a cats-vs-owls
model. Its features say more: the distance from a photo's L2-normalised pre-logits vector (the
classifier's input; for a pretrained backbone left frozen, ImageNet's feature space) to its
k-th nearest training photo is small for photos like the training ones and large for others
(Sun et al., ICML 2022, "Out-of-distribution detection with deep nearest neighbors",
https://arxiv.org/abs/2204.06507). The threshold is the distance that all but `rate` of the
validation photos stay under, so about that share of photos like the training ones is flagged.

The reusable parts, for anything that scores photos against a reference set (prediction here,
`photoclass check` for outliers in a dataset): `pre_logits` (features through the model
contract, one batched pass), `l2_normalize` and `knn_distance` (plain arrays in, distances
out). `Novelty` is what a bundle stores: a float16 sample of the training features
(`novelty.safetensors`, at most `REFERENCE` rows) and the threshold (`photoclass.json`,
"novelty").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from photoclass.data.preprocess import Normalize
from photoclass.models.classifier import ImageClassifier
from photoclass.prediction.inference import CPU_FP32, logits_for
from photoclass.progress import NO_PROGRESS, Progress
from photoclass.runtime import Compute

FILE = "novelty.safetensors"
K = 10  # neighbours: the k-th one's distance is the score
_CHUNK = 1024  # query rows per distance block: 1024 x 10,000 float32 = 40 MB
REFERENCE = 1000  # training photos kept in a bundle: 2.6 MB of float16 for a 1280-wide feature


def pre_logits(
    model: ImageClassifier,
    images: np.ndarray,
    normalize: Normalize,
    *,
    compute: Compute = CPU_FP32,
    engine: str = "torch",
    batch_size: int = 32,
    progress: Progress = NO_PROGRESS,
    description: str = "features",
) -> torch.Tensor:
    """(N, D) float32 pre-logits (what the classifier reads) of (N, H, W, 3) uint8 `images`,
    computed by `engine` (see `photoclass.prediction.engine`)."""
    # Every layer but the classifier: what `forward_head(forward_features(x), pre_logits=True)`
    # computes (the contract keeps the layers in one nn.Sequential, run in order). As a module
    # without the head, its ONNX graph (engine "onnx") depends on the backbone's weights alone:
    # exported once per pretrained backbone, whatever the classes.
    return logits_for(
        nn.Sequential(*list(model)[:-1]),
        images,
        normalize,
        compute=compute,
        engine=engine,
        batch_size=batch_size,
        progress=progress,
        description=description,
    )


def l2_normalize(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """Rows scaled to unit length, float32 (a zero row stays zero)."""
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_distance(
    reference: np.ndarray,
    queries: np.ndarray,
    k: int = K,
    *,
    same: bool = False,
    reference_sq: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distance from each row of `queries` to its k-th nearest row of `reference`
    (both (N, D), any float dtype), in chunks so memory stays small. `same=True` when
    `queries` is `reference`, so that a row is not its own neighbour; with fewer than k
    other rows, the farthest is used (and with none, the distance is infinite).
    `reference_sq`: the rows' squared lengths, when the caller keeps them."""
    ref = np.asarray(reference, dtype=np.float32)
    points = np.asarray(queries, dtype=np.float32)
    k = min(k, len(ref) - same)
    if k < 1:
        return np.full(len(points), np.inf, np.float32)
    ref_sq = squared_lengths(ref) if reference_sq is None else reference_sq
    # The products in PyTorch, not numpy: OpenBLAS's threads spin for a long while after each
    # product, and in a server predicting batch after batch they took a core from the model
    # (`photoclass serve` answered 1.4x more photos with PyTorch's, which sleep; bench/README.md).
    ref_t = _tensor(ref)
    out = np.empty(len(points), np.float32)
    for start in range(0, len(points), _CHUNK):
        q = points[start : start + _CHUNK]
        d2 = squared_lengths(q)[:, None] + ref_sq[None, :] - 2 * (_tensor(q) @ ref_t.T).numpy()
        if same:
            rows = np.arange(len(q))
            d2[rows, start + rows] = np.inf
        out[start : start + len(q)] = np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0))
    return out


def _tensor(array: np.ndarray) -> torch.Tensor:
    """`array` as a tensor sharing its memory (a copy when it is read-only: torch would warn)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def squared_lengths(rows: np.ndarray) -> np.ndarray:
    """Each row's squared Euclidean length, float32."""
    return np.einsum("ij,ij->i", rows, rows, dtype=np.float32)


@dataclass
class Novelty:
    """The reference features and the threshold above which a photo is "unknown"."""

    reference: np.ndarray  # (N, D) L2-normalised training features, float16 values
    k: int
    threshold: float
    rate: float  # the share of validation photos above `threshold`, as asked for

    def __post_init__(self) -> None:
        # Held as float32 (the bundle keeps float16): numpy widens float16 one element at a
        # time, ~9 ms for 1,000 x 1,280 on every call, more than a one-photo forward pass.
        self.reference = np.asarray(self.reference, dtype=np.float32)
        self._reference_sq = squared_lengths(self.reference)  # the same for every query

    def distances(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        return knn_distance(self.reference, l2_normalize(features), self.k, reference_sq=self._reference_sq)

    def unknown(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """True for each photo farther from the training photos than the threshold."""
        return self.distances(features) > self.threshold

    def meta(self) -> dict[str, Any]:
        """What `photoclass.json` records under "novelty" (the features go to `FILE`)."""
        return {"k": self.k, "threshold": self.threshold, "rate": self.rate, "reference": len(self.reference)}

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        reference = torch.from_numpy(self.reference.astype(np.float16))  # lossless: float16 values
        save_file({"reference": reference}, str(Path(folder) / FILE))

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> Novelty:
        from safetensors.torch import load_file

        reference = load_file(str(Path(folder) / FILE))["reference"].numpy()
        return cls(reference, int(meta["k"]), float(meta["threshold"]), float(meta["rate"]))


def fit_novelty(
    train_features: np.ndarray | torch.Tensor,
    train_labels: np.ndarray,
    val_features: np.ndarray | torch.Tensor,
    *,
    rate: float,
    k: int = K,
    keep: int = REFERENCE,
    seed: int = 0,
) -> Novelty:
    """Keep up to `keep` training features (the same share of each class, seeded) and set the
    threshold that flags `rate` of the validation photos."""
    train = l2_normalize(train_features)
    labels = np.asarray(train_labels)
    rng = np.random.default_rng(seed)
    share = min(1.0, keep / max(1, len(train)))
    rows = np.sort(
        np.concatenate(
            [
                rng.choice(idx, max(1, round(len(idx) * share)), replace=False)
                for idx in (np.flatnonzero(labels == c) for c in np.unique(labels))
            ]
        )
    )
    reference = train[rows].astype(np.float16)
    distances = knn_distance(reference, l2_normalize(val_features), k)
    threshold = float(np.quantile(distances, 1 - rate)) if len(distances) else float("inf")
    return Novelty(reference, k, threshold, rate)
