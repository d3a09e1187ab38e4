"""What a classifier's logits say against the labels: confusion, per-class scores, top-k, calibration.

Every function takes the whole split at once (logits ``(N, K)``, integer labels ``(N,)``; torch
tensors on any device or NumPy arrays) and returns NumPy or pandas values. Per-class precision,
recall and F1 are scikit-learn's ``precision_recall_fscore_support``: the same functions
``mlflow.models.evaluate(model_type="classifier")`` calls, so the weighted averages here are its
``precision_score``, ``recall_score`` and ``f1_score`` for a multiclass model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from scipy.special import softmax
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

ECE_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al. 2017)


def as_numpy(values: torch.Tensor | npt.ArrayLike) -> np.ndarray:
    """``values`` as a NumPy array, copied off the device when it is a tensor."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def check_split(
    logits: torch.Tensor | npt.ArrayLike, labels: torch.Tensor | npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Logits as float64 ``(N, K)`` and labels as int64 ``(N,)``, each label in ``[0, K)``."""
    z = as_numpy(logits).astype(np.float64, copy=False)
    y = as_numpy(labels)
    if z.ndim != 2 or y.ndim != 1 or len(z) != len(y) or len(y) == 0:
        raise ValueError(f"logits must be (N, K) and labels (N,) with N > 0, got {z.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {y.dtype}")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in [0, {z.shape[1]}), got {y.min()} to {y.max()}")
    return z, y.astype(np.int64, copy=False)


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` over classes."""
    return softmax(logits / temperature, axis=1)


def confusion_counts(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class, every class listed."""
    return confusion_matrix(labels, preds, labels=np.arange(num_classes))


def per_class_scores(labels: np.ndarray, preds: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per class: ``class``, ``name``, ``precision``, ``recall``, ``f1``, ``support`` (true
    images) and ``predicted`` (images predicted as it). A class never predicted has precision 0, a
    class absent from the labels recall 0 (scikit-learn's ``zero_division=0``)."""
    classes = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, preds, labels=classes, zero_division=0.0)
    return pd.DataFrame({
        "class": classes, "name": list(class_names), "precision": precision, "recall": recall, "f1": f1,
        "support": support.astype(np.int64), "predicted": np.bincount(preds, minlength=len(classes)),
    })


def averaged_scores(per_class: pd.DataFrame) -> dict[str, float]:
    """Macro averages over the classes present in the labels, and averages weighted by support
    (what MLflow's classifier evaluator reports as ``precision_score``, ...)."""
    present = per_class[per_class["support"] > 0]
    weights = present["support"] / present["support"].sum()
    out: dict[str, float] = {}
    for score in ("precision", "recall", "f1"):
        out[f"macro_{score}"] = float(present[score].mean())
        out[f"weighted_{score}"] = float((present[score] * weights).sum())
    return out


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """Share of images whose label is among the ``k`` highest logits; None when there are no more
    than ``k`` classes (every label would count)."""
    if logits.shape[1] <= k:
        return None
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Images grouped by confidence (the top probability) into ``n_bins`` equal-width bins
    ``(lower, upper]``: per bin ``lower``, ``upper``, ``count``, ``accuracy`` and ``confidence``
    (means; NaN for an empty bin)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.searchsorted(edges[1:-1], confidence, side="left")  # bin i holds (edges[i], edges[i+1]]
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / count
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count,
                         "accuracy": accuracy, "confidence": mean_conf})


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: the gap ``|accuracy - confidence|`` of each confidence bin, weighted by its share of images."""
    bins = reliability_bins(probs, labels, n_bins)
    filled = bins[bins["count"] > 0]
    return float((filled["count"] * (filled["accuracy"] - filled["confidence"]).abs()).sum() / len(labels))


def worst_confusions(confusion: np.ndarray, class_names: Sequence[str], n: int = 10) -> pd.DataFrame:
    """The ``n`` largest off-diagonal cells: ``true``, ``predicted`` (indices), their names,
    ``count`` and ``rate`` (the share of the true class's images sent to that class). Ordered by
    count, then rate, then class indices; cells with no image are left out."""
    true, pred = np.nonzero(confusion * (1 - np.eye(len(confusion), dtype=confusion.dtype)))
    count = confusion[true, pred]
    rate = count / confusion.sum(axis=1)[true]
    order = np.lexsort((pred, true, -rate, -count))[:n]
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame({"true": true[order], "predicted": pred[order], "true_name": names[true[order]],
                         "predicted_name": names[pred[order]], "count": count[order], "rate": rate[order]})


__all__ = [
    "ECE_BINS", "as_numpy", "averaged_scores", "check_split", "confusion_counts", "expected_calibration_error",
    "per_class_scores", "probabilities", "reliability_bins", "topk_accuracy", "worst_confusions",
]
