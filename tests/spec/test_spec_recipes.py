"""Recipe fields in study files: searched like lr, fixed like any field, bad values one line each,
and every one of them reaches the trial's config, its Optuna parameters and its MLflow params."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import optuna
import pytest

from tl_bench.config import TrialConfig
from tl_bench.errors import SpecError
from tl_bench.spec import load_spec
from tl_bench.spec.ranges import CategoricalRange, FloatRange
from tl_bench.study.space import SearchSpace
from tl_bench.tracking.names import config_params

RECIPE_SPACE = {
    "layer_decay": [None, 0.65, 0.8],
    "drop_path_rate": {"low": 0.0, "high": 0.2},
    "mixup": [0.0, 0.8],
    "cutmix": [0.0, 1.0],
    "mixup_prob": {"low": 0.5, "high": 1.0},
    "augment": [True, False, "randaug", "trivialaug", "autoaug"],
    "ema_decay": [None, 0.999],
    "optimizer": ["adamw", "lamb", "lion", "sgd"],
    "sched": ["cosine", "step", "plateau"],
    "precision": ["auto", "bf16"],
    "channels_last": ["auto", True],
}


def test_recipe_fields_are_searched_and_converted(base: dict[str, Any], write_spec: Callable[..., Path]) -> None:
    base["space"].update(RECIPE_SPACE)
    base["fixed"].update({"compile": False, "decay_rate": 0.5, "patience_epochs": 2})
    spec = load_spec(write_spec(base))
    hyper = spec.space.hyper
    assert hyper["augment"] == CategoricalRange(choices=["light", "none", "randaug", "trivialaug", "autoaug"])
    assert isinstance(hyper["drop_path_rate"], FloatRange) and hyper["layer_decay"].choices[0] is None
    space = SearchSpace(spec, {"test_resnet": 5, "test_vit": 5})
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = {**spec.fixed, **space.suggest(trial)}
    config = TrialConfig(dataset="digits", **values)
    assert set(RECIPE_SPACE) <= set(trial.params)
    params = config_params(config)
    for name in [*RECIPE_SPACE, "compile", "decay_rate", "patience_epochs"]:
        assert params[name] == str(getattr(config, name))
    assert params["compile"] == "False" and params["decay_rate"] == "0.5"


@pytest.mark.parametrize(
    ("where", "value", "field", "what", "accepted"),
    [
        ("space", ["none", "heavy"], "space.augment[1]", "'heavy'", "'none', 'light', 'randaug', 'trivialaug', 'autoaug' (true = light, false = none)"),
        ("space", ["adamw", "adamx"], "space.optimizer[1]", "'adamx'", "'lamb'"),
        ("fixed", 1.5, "fixed.layer_decay", "1.5", "a number > 0 and <= 1 or null"),
        ("fixed", 1.0, "fixed.ema_decay", "1.0", "a number > 0 and < 1 or null"),
        ("fixed", "fp8", "fixed.precision", "'fp8'", "'auto', 'fp32', 'bf16', 'fp16'"),
        ("fixed", 1, "fixed.channels_last", "1", "true or false or 'auto'"),
        ("fixed", "yes", "fixed.compile", "'yes'", "true or false"),
        ("space", {"low": 0.0, "high": 1.5}, "space.mixup_prob.high", "1.5", "a number >= 0 and <= 1"),
        ("space", ["cosine", "onecycle"], "space.sched[1]", "'onecycle'", "'cosine', 'step', 'plateau'"),
        ("fixed", -0.1, "fixed.drop_path_rate", "-0.1", "a number >= 0 and < 1"),
    ],
    ids=["augment", "optimizer", "layer_decay", "ema_decay", "precision", "channels_last", "compile", "mixup_prob",
         "sched", "drop_path_rate"],
)
def test_bad_recipe_values_are_one_line(
    base: dict[str, Any], write_spec: Callable[..., Path], where: str, value: Any, field: str, what: str, accepted: str,
) -> None:
    base[where][field.split(".")[1].split("[")[0]] = value
    path = write_spec(base)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: {field}: "), message
    wrong, _, accepts = message[len(f"{path}: {field}: "):].partition("; accepted: ")
    assert what in wrong and accepted in accepts, message


STUDIES = Path(__file__).resolve().parents[2] / "studies"
SEARCHED = {"layer_decay", "drop_path_rate", "mixup", "cutmix", "augment", "ema_decay", "optimizer", "sched"}


def test_the_recipe_study_searches_the_recipe_on_published_weights() -> None:
    spec = load_spec(STUDIES / "finetune_recipes.yaml")
    assert {b.name for b in spec.space.backbones} == {"resnet50", "convnext_tiny", "vit_small_patch16_224"}
    assert all(b.weights == ["pretrained"] for b in spec.space.backbones)
    assert SEARCHED <= set(spec.space.hyper) and spec.space.freeze_depth == [0]
    assert {"lamb", "lion", "sgd"} <= set(spec.space.hyper["optimizer"].choices)
    assert set(spec.space.hyper["sched"].choices) == {"cosine", "step", "plateau"}
    assert spec.fixed["precision"] == "bf16" and spec.fixed["channels_last"] is True
    assert all(d.img_size == 224 and d.download for d in spec.datasets)


def test_the_offline_recipe_study_reuses_the_quickstarts_checkpoints() -> None:
    from tl_bench.pretrain import checkpoint_path

    spec = load_spec(STUDIES / "finetune_recipes_offline.yaml")
    quickstart = load_spec(STUDIES / "quickstart.yaml")
    assert SEARCHED <= set(spec.space.hyper)
    assert {b.name: b.weights for b in spec.space.backbones} == {
        name: ["local:shapes"] for name in ("test_resnet", "test_convnext", "test_vit")}
    assert spec.datasets[0].name == "digits" and spec.datasets[0].img_size == 32 and not spec.datasets[0].download
    assert "fp16" not in str(spec.fixed) and not spec.fixed.get("compile", False)  # runs on a CPU
    for backbone in ("test_resnet", "test_convnext", "test_vit"):
        assert checkpoint_path(spec, "shapes", backbone) == checkpoint_path(quickstart, "shapes", backbone)
