"""Model EMA: the averaged weights are validated, selected, tested and left in the model."""

from __future__ import annotations

import contextlib

import torch

from tl_bench.train import build_for, train_trial
from tl_bench.train.evaluate import evaluate
from tl_bench.train.batches import ImageFeeder


def _trained(make_config, digits, **changes):
    config = make_config(**{"epochs": 2, **changes})
    model = build_for(config, digits.num_classes)
    return model, train_trial(config, model, digits)


def test_ema_weights_differ_from_the_raw_ones_and_are_the_ones_tested(make_config, digits) -> None:
    raw_model, raw = _trained(make_config, digits, select="last")
    ema_model, ema = _trained(make_config, digits, select="last", ema_decay=0.9)
    assert ema.ema_tested and not raw.ema_tested
    # the same seed trains the same raw weights: what differs is that the model now holds their average
    raw_state, ema_state = raw_model.state_dict(), ema_model.state_dict()
    assert any(not torch.allclose(raw_state[k].float(), ema_state[k].float()) for k in raw_state)
    assert raw.history[0]["train_loss"] == ema.history[0]["train_loss"]
    assert raw.history[-1]["val_acc"] != ema.history[-1]["val_acc"] or raw.history[-1]["val_loss"] != ema.history[-1]["val_loss"]
    # the test accuracy reported is that of the weights left in the model
    mean, std = ema_model.backbone.data_config["mean"], ema_model.backbone.data_config["std"]
    feeder = ImageFeeder(digits, device=torch.device("cpu"), mean=mean, std=std, batch_size=64, eval_batch_size=256)
    ema_model.eval()
    again = evaluate(ema_model, feeder.eval_batches("test"), digits.num_classes, autocast=contextlib.nullcontext)
    assert again["acc"] == ema.test_acc


def test_best_epoch_selection_reads_the_ema(make_config, digits) -> None:
    _, result = _trained(make_config, digits, ema_decay=0.5, select="best_val", epochs=3)
    assert result.ema_tested
    best = max(result.history, key=lambda h: (h["val_acc"], -h["val_loss"]))
    assert result.val_acc == best["val_acc"] and result.best_epoch == result.history.index(best) + 1


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in a) ** 0.5)


def test_a_slow_decay_on_a_short_run_follows_the_training(make_config, digits) -> None:
    # 14 steps at decay 0.9999: without timm's warm-up of the decay the average would stay where
    # the first step left it; with it the decay is 1 - t^(-2/3) (0.83 at step 14), so the averaged
    # weights travel most of the way the raw ones did.
    config = make_config(select="last", ema_decay=0.9999)
    model = build_for(config, digits.num_classes)
    initial = {k: p.detach().clone() for k, p in model.named_parameters()}
    result = train_trial(config, model, digits)
    ema = {k: p.detach() for k, p in model.named_parameters()}
    raw_model = build_for(config.replace(ema_decay=None), digits.num_classes)
    train_trial(config.replace(ema_decay=None), raw_model, digits)
    raw = {k: p.detach() for k, p in raw_model.named_parameters()}
    assert result.ema_tested
    moved, travelled = _distance(ema, initial), _distance(raw, initial)
    assert travelled > 0 and moved > 0.5 * travelled
    assert _distance(ema, raw) > 0  # still an average, not the last weights
