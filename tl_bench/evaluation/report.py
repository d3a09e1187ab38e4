"""A classifier's evaluation report on one split, as values: ``build_report`` computes it once,
``report_files.write_report`` writes it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from tl_bench.evaluation.calibration import fit_temperature, nll
from tl_bench.evaluation.metrics import (
    ECE_BINS,
    averaged_scores,
    check_split,
    confusion_counts,
    expected_calibration_error,
    per_class_scores,
    probabilities,
    topk_accuracy,
    worst_confusions,
)

Array = torch.Tensor | npt.ArrayLike


@dataclass(frozen=True)
class ClassifierReport:
    """Everything the report files show.

    ``summary`` holds the scalars (``n_images``, ``n_classes``, ``top1``, ``top5`` (None with five
    classes or fewer), ``macro_*`` and ``weighted_*`` precision/recall/F1, ``nll``, ``ece``, ``temperature``,
    ``nll_scaled``, ``ece_scaled``, ``ece_bins``, ``temperature_fit_on``: validation, this split or
    stored with the model); ``confusion`` the
    ``(K, K)`` counts (row = true class); ``per_class`` and ``worst_pairs`` the tables of
    ``metrics.per_class_scores`` and ``metrics.worst_confusions``.
    """

    class_names: tuple[str, ...]
    confusion: np.ndarray
    per_class: pd.DataFrame
    worst_pairs: pd.DataFrame
    summary: dict[str, Any]

    @property
    def temperature(self) -> float:
        """The temperature fitted on validation, to be stored with the model."""
        return float(self.summary["temperature"])

    def confusion_frame(self) -> pd.DataFrame:
        """The confusion counts labelled with class names: index true class, columns predicted."""
        return pd.DataFrame(self.confusion, index=list(self.class_names),
                            columns=list(self.class_names)).rename_axis("true \\ predicted")


def build_report(
    logits: Array,
    labels: Array,
    *,
    class_names: Sequence[str] | None = None,
    val_logits: Array | None = None,
    val_labels: Array | None = None,
    temperature: float | None = None,
    n_bins: int = ECE_BINS,
    n_pairs: int = 10,
) -> ClassifierReport:
    """The report of ``logits`` against ``labels`` (one split, every image once).

    The temperature is ``temperature`` when given (the one stored with the model, for a split it
    was not fitted on, such as an outside image folder), else fitted on ``val_logits``/``val_labels``
    when given (reporting a test split), else on ``logits``/``labels`` themselves (reporting the
    validation split); ECE and NLL are given before (``T = 1``) and after scaling by it.
    ``class_names`` defaults to the class indices.
    """
    z, y = check_split(logits, labels)
    names = tuple(str(n) for n in class_names) if class_names is not None else tuple(str(i) for i in range(z.shape[1]))
    if len(names) != z.shape[1]:
        raise ValueError(f"{len(names)} class names for {z.shape[1]} classes")
    if (val_logits is None) != (val_labels is None):
        raise ValueError("give both val_logits and val_labels, or neither")
    if temperature is not None and val_logits is not None:
        raise ValueError("give a temperature or validation logits to fit one, not both")
    if temperature is not None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        fit_on = "stored with the model"
    elif val_logits is None:
        temperature, fit_on = fit_temperature(z, y), "this split"
    else:
        temperature, fit_on = fit_temperature(val_logits, val_labels), "validation"
    preds = z.argmax(axis=1)
    confusion = confusion_counts(y, preds, len(names))
    per_class = per_class_scores(y, preds, names)
    summary: dict[str, Any] = {
        "n_images": int(len(y)), "n_classes": len(names),
        "top1": float((preds == y).mean()), "top5": topk_accuracy(z, y, 5),
        **averaged_scores(per_class),
        "nll": nll(z, y), "ece": expected_calibration_error(probabilities(z), y, n_bins),
        "temperature": temperature,
        "nll_scaled": nll(z, y, temperature),
        "ece_scaled": expected_calibration_error(probabilities(z, temperature), y, n_bins),
        "ece_bins": n_bins,
        "temperature_fit_on": fit_on,
    }
    return ClassifierReport(names, confusion, per_class, worst_confusions(confusion, names, n_pairs), summary)


__all__ = ["ClassifierReport", "build_report"]
