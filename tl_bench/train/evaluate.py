"""Accuracy and loss of a model over one split, accumulated on the device and read once."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(
    forward: Callable[[Any], torch.Tensor],
    batches: Iterable[tuple[Any, torch.Tensor]],
    num_classes: int,
    *,
    autocast: Callable[[], AbstractContextManager[Any]],
    per_class: bool = False,
) -> dict[str, Any]:
    """Top-1 accuracy, mean cross-entropy (no label smoothing) and, with >= 5 classes, top-5.

    With ``per_class`` also the accuracy of every class (NaN for classes absent
    from the split) and balanced accuracy, the mean over present classes.
    Counts stay on the device so a whole pass costs one synchronisation.
    """
    totals: torch.Tensor | None = None
    count = 0
    seen = correct_per_class = None
    for inputs, labels in batches:
        with autocast():
            logits = forward(inputs)
        logits = logits.float()
        pred = logits.argmax(dim=1)
        hit = pred == labels
        row = torch.stack(
            [
                F.cross_entropy(logits, labels, reduction="sum"),
                hit.sum(dtype=torch.float32),
                _topk_hits(logits, labels, 5) if num_classes >= 5 else hit.new_zeros((), dtype=torch.float32),
            ]
        )
        totals = row if totals is None else totals + row
        count += len(labels)
        if per_class:
            seen_batch = torch.bincount(labels, minlength=num_classes)
            hit_batch = torch.bincount(labels[hit], minlength=num_classes)
            seen = seen_batch if seen is None else seen + seen_batch
            correct_per_class = hit_batch if correct_per_class is None else correct_per_class + hit_batch
    if totals is None:
        raise ValueError("cannot evaluate on an empty split")
    loss_sum, correct, top5 = totals.tolist()
    out: dict[str, Any] = {"acc": correct / count, "loss": loss_sum / count}
    if num_classes >= 5:
        out["top5"] = top5 / count
    if per_class:
        assert seen is not None and correct_per_class is not None
        seen_list, hit_list = seen.tolist(), correct_per_class.tolist()
        accs = [h / s if s else math.nan for h, s in zip(hit_list, seen_list)]
        present = [a for a in accs if not math.isnan(a)]
        out["per_class_acc"] = accs
        out["balanced_acc"] = sum(present) / len(present)
    return out


def _topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    top = logits.topk(k, dim=1).indices
    return (top == labels[:, None]).any(dim=1).sum(dtype=torch.float32)


__all__ = ["evaluate"]
