"""The test split chooses nothing: selection reads validation only, test is read once at the end."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tl_bench.data import DatasetSplits
from tl_bench.train import build_for, train_trial


def _val_argmax(history: list[dict[str, float]]) -> int:
    best = max(history, key=lambda h: (h["val_acc"], -h["val_loss"]))
    return int(best["epoch"])


def _predict(model: torch.nn.Module, images_u8: torch.Tensor) -> torch.Tensor:
    cfg = model.backbone.data_config
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        preds = model((images_u8.float() / 255 - mean) / std).argmax(1)
    model.train(was_training)
    return preds


def test_best_val_epoch_is_tested_even_when_test_would_pick_another(make_config, digits) -> None:
    # The test split is the validation images with labels set, after epoch 1,
    # to epoch 1's own predictions: the test split would pick epoch 1 (100%).
    test = dataclasses.replace(digits.val, name="test", labels=digits.val.labels.clone())
    data = dataclasses.replace(digits, test=test)
    config = make_config(epochs=4, select="best_val")
    model = build_for(config, data.num_classes)
    preds: dict[int, torch.Tensor] = {}

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        preds[epoch] = _predict(model, test.images)
        if epoch == 1:
            test.labels.copy_(preds[1])

    result = train_trial(config, model, data, on_epoch=on_epoch)
    agreement = {e: (p == preds[1]).float().mean().item() for e, p in preds.items()}
    assert max(agreement, key=agreement.get) == 1
    assert result.best_epoch == _val_argmax(result.history) != 1
    assert result.val_acc == result.history[result.best_epoch - 1]["val_acc"]
    # Measured on the restored weights of the chosen epoch, not the last ones.
    assert result.test_acc == pytest.approx(agreement[result.best_epoch], abs=1.5 / len(test))
    assert result.test_acc < 1.0


def test_test_labels_change_nothing_but_test_metrics(make_config, digits) -> None:
    g = torch.Generator().manual_seed(0)
    shuffled = dataclasses.replace(digits.test, labels=digits.test.labels[torch.randperm(len(digits.test), generator=g)])
    # A linear probe on cached features: many epochs for the price of one.
    config = make_config(freeze_depth="all", epochs=10, lr=0.1)
    runs = []
    for data in (digits, dataclasses.replace(digits, test=shuffled)):
        runs.append(train_trial(config, build_for(config, data.num_classes), data))
    real, fake = runs
    assert real.history == fake.history
    assert (real.best_epoch, real.val_acc, real.val_loss) == (fake.best_epoch, fake.val_acc, fake.val_loss)
    assert real.cache_used and fake.cache_used
    assert real.test_acc > fake.test_acc + 0.2


def test_select_last_tests_the_last_epoch(make_config, digits: DatasetSplits) -> None:
    config = make_config(freeze_depth="all", epochs=4, lr=0.1, select="last")
    result = train_trial(config, build_for(config, digits.num_classes), digits)
    assert result.best_epoch == 4
    assert result.val_acc == result.history[-1]["val_acc"]
