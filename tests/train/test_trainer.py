from __future__ import annotations

import math

import pytest
import torch

from tl_bench.errors import NonFiniteLossError
from tl_bench.train import build_for, train_config, train_trial


def test_learns_digits_well_above_chance(make_config) -> None:
    result = train_config(make_config(epochs=3))
    # 10 balanced classes: chance is 0.1.
    assert result.test_acc > 0.3
    assert result.val_acc > 0.3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert len(result.test_per_class_acc) == 10
    assert 0.0 < result.test_balanced_acc <= 1.0
    assert result.cache_used is False and result.device == "cpu"


def test_same_seed_same_result_and_other_seed_differs(make_config) -> None:
    first = train_config(make_config(epochs=1))
    second = train_config(make_config(epochs=1))
    other = train_config(make_config(epochs=1, seed=1))
    assert first.history == second.history
    assert first.test_acc == second.test_acc
    assert first.test_per_class_acc == second.test_per_class_acc
    assert other.history[0]["train_loss"] != first.history[0]["train_loss"]


def test_cost_fields_are_measured(make_config) -> None:
    config = make_config(epochs=2)
    result = train_config(config)
    for name in (
        "setup_time_s",
        "train_time_s",
        "eval_time_s",
        "train_throughput_ips",
        "flops_fwd_per_image",
        "flops_train_per_image",
        "train_flops_total",
        "params_total",
        "params_trainable",
        "params_backbone",
        "params_head",
        "n_stages",
        "trainable_fraction",
    ):
        assert getattr(result, name) > 0, name
    assert result.peak_mem_mb > 0
    images = result.train_throughput_ips * result.train_time_s
    # Two epochs over 400 items, shuffled batches of 64 (no singleton batch to drop).
    assert images == pytest.approx(800)
    assert result.train_flops_total == pytest.approx(result.flops_train_per_image * 800)
    assert result.flops_train_per_image > result.flops_fwd_per_image
    assert result.params_trainable == result.params_total  # nothing frozen
    assert [h["epoch"] for h in result.history] == [1.0, 2.0]
    assert set(result.history[0]) == {"epoch", "train_loss", "val_acc", "val_loss", "val_top5", "lr"}
    assert result.val_top5 is not None and result.val_top5 >= result.val_acc
    assert result.metrics()["peak_mem_mb"] == result.peak_mem_mb
    assert result.feature_time_s == 0 and not result.cache_hit  # no cache: nothing charged from one

    # Evaluation is timed apart from training: one training batch per epoch against 1,000
    # validation images per epoch (and 539 test images) makes evaluation about six times the
    # work, so a training time that included evaluation would reach most of the evaluation time.
    lopsided = train_config(make_config(train_size=64, val_size=1000, epochs=3))
    assert lopsided.train_throughput_ips * lopsided.train_time_s == pytest.approx(3 * 64)
    assert lopsided.train_time_s * 2 < lopsided.eval_time_s, (lopsided.train_time_s, lopsided.eval_time_s)


def test_on_epoch_sees_metrics_and_its_exception_stops_the_trial(make_config, digits) -> None:
    calls: list[tuple[int, dict[str, float]]] = []

    class Stop(Exception):
        pass

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        calls.append((epoch, metrics))
        if epoch == 2:
            raise Stop

    config = make_config(freeze_depth="all", epochs=4)
    with pytest.raises(Stop):
        train_trial(config, build_for(config, digits.num_classes), digits, on_epoch=on_epoch)
    assert [e for e, _ in calls] == [1, 2]
    assert set(calls[0][1]) == {"train_loss", "val_acc", "val_loss", "val_top5", "lr", "elapsed_train_s",
                                "elapsed_train_flops", "params_trainable", "adapter_mb", "latency_ms", "infer_ips"}
    assert calls[1][1]["elapsed_train_s"] > calls[0][1]["elapsed_train_s"] > 0
    assert calls[1][1]["elapsed_train_flops"] > calls[0][1]["elapsed_train_flops"] > 0
    assert all(math.isfinite(v) for v in calls[0][1].values())


def test_exploding_learning_rate_raises_non_finite_loss(make_config, digits) -> None:
    config = make_config(lr=1e30, epochs=1)
    with pytest.raises(NonFiniteLossError) as caught:
        train_trial(config, build_for(config, digits.num_classes), digits)
    assert caught.value.epoch == 1
    assert caught.value.step >= 2  # the first step starts from finite weights
    assert not math.isfinite(caught.value.value)


def test_non_finite_loss_reports_the_exact_epoch_and_step(make_config, digits) -> None:
    config = make_config(epochs=3)
    model = build_for(config, digits.num_classes)
    training_calls = 0
    steps_per_epoch = math.ceil(400 / 64)

    def poison(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        nonlocal training_calls
        if not module.training:
            return output
        training_calls += 1
        return output * float("nan") if training_calls == steps_per_epoch + 3 else output

    model.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError) as caught:
        train_trial(config, model, digits)
    assert (caught.value.epoch, caught.value.step) == (2, 3)
    assert "epoch 2, step 3" in str(caught.value)


def test_partly_frozen_backbone_trains_without_cache(make_config) -> None:
    result = train_config(make_config(freeze_depth=1, epochs=1))
    assert result.cache_used is False
    assert 0 < result.params_trainable < result.params_total
    assert result.trainable_fraction == pytest.approx(result.params_trainable / result.params_total)
