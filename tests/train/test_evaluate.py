from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from tl_bench.train.evaluate import evaluate


def run(logits: torch.Tensor, labels: torch.Tensor, num_classes: int, batch: int, per_class: bool = False) -> dict:
    batches = [(logits[i : i + batch], labels[i : i + batch]) for i in range(0, len(labels), batch)]
    return evaluate(lambda x: x, batches, num_classes, autocast=contextlib.nullcontext, per_class=per_class)


def test_accuracy_loss_and_top5_match_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=g)
    labels = torch.randint(0, 7, (50,), generator=g)
    out = run(logits, labels, 7, batch=8)
    assert out["acc"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert out["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    top5 = (logits.topk(5, 1).indices == labels[:, None]).any(1).float().mean().item()
    assert out["top5"] == pytest.approx(top5)


def test_per_class_and_balanced_accuracy_skip_absent_classes() -> None:
    # class 0: 3 items, 2 right; class 1: 1 item, right; class 2: absent.
    labels = torch.tensor([0, 0, 0, 1])
    preds = torch.tensor([0, 0, 1, 1])
    logits = F.one_hot(preds, 3).float()
    out = run(logits, labels, 3, batch=3, per_class=True)
    assert out["acc"] == pytest.approx(0.75)
    assert out["per_class_acc"][:2] == pytest.approx([2 / 3, 1.0])
    assert math.isnan(out["per_class_acc"][2])
    assert out["balanced_acc"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert "top5" not in out


def test_empty_split_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        evaluate(lambda x: x, [], 3, autocast=contextlib.nullcontext)
