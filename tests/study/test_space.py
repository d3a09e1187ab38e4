from __future__ import annotations

import optuna
import pytest

from tl_bench.models import count_stages
from tl_bench.spec import load_spec
from tl_bench.study.space import COMBO, SearchSpace, build_config, valid_depths



def test_valid_depths_drop_missing_and_duplicate_of_all() -> None:
    assert valid_depths([0, 2, 5, 9, "all"], 5) == [0, 2, "all"]  # 5 == all, 9 does not exist
    assert valid_depths([0, 2, 5], 5) == [0, 2, 5]
    assert valid_depths([9], 5) == []


def _space(make_spec, **overrides: object) -> SearchSpace:  # type: ignore[no-untyped-def]
    spec = load_spec(make_spec(**overrides))
    return SearchSpace(spec, {b.name: count_stages(b.name) for b in spec.space.backbones})


def test_each_backbone_offers_only_its_own_depths(make_spec) -> None:  # type: ignore[no-untyped-def]
    space = _space(
        make_spec,
        space={"backbones": ["test_resnet", "test_vit"], "freeze_depth": [0, 5, 6, "all"], "neck": ["gap"], "head": ["linear"]},
    )
    assert count_stages("test_resnet") == 5 and count_stages("test_vit") == 7
    assert space.depths["test_resnet"] == [0, "all"]
    assert space.depths["test_vit"] == [0, 5, 6, "all"]
    trial = optuna.trial.FixedTrial({"backbone": "test_vit", "freeze_depth@test_vit": "6"})
    values = space.suggest(trial)
    assert values["backbone"] == "test_vit" and values["freeze_depth"] == 6


def test_suggested_values_make_a_trial_config(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(make_spec())
    space = SearchSpace(spec, {"test_resnet": 5})
    trial = optuna.trial.FixedTrial(
        {"backbone": "test_resnet", "freeze_depth@test_resnet": "all", "neck": "gem", "head": "cosine", "lr": 0.005}
    )
    config = build_config(space.suggest(trial), base=spec.base_config(spec.datasets[0]), checkpoint_for=lambda b, w: None)
    assert (config.backbone, config.freeze_depth, config.neck, config.head) == ("test_resnet", "all", "gem", "cosine")
    assert config.lr == pytest.approx(0.005)
    assert config.epochs == 2 and config.img_size == 16 and config.train_size == 200


def test_grid_space_lists_each_valid_combination_once(make_spec) -> None:  # type: ignore[no-untyped-def]
    space = _space(
        make_spec,
        space={"backbones": ["test_resnet"], "freeze_depth": [0, 5, "all"], "neck": ["gap", "gem"], "head": ["linear"]},
        sampler={"name": "grid"},
    )
    combos = space.grid_space()[COMBO]
    assert len(combos) == len(set(combos)) == 2 * 2  # depths {0, all} x necks {gap, gem}
    values = space.suggest(optuna.trial.FixedTrial({COMBO: combos[-1]}))
    assert values["freeze_depth"] == "all" and values["neck"] == "gem"


def test_baseline_params_reproduce_the_baseline(make_spec) -> None:  # type: ignore[no-untyped-def]
    space = _space(make_spec)
    params = space.baseline_params({"backbone": "test_resnet", "freeze_depth": "all", "neck": "gem", "head": "linear"})
    values = space.suggest(optuna.trial.FixedTrial({**params, "lr": 0.001}))
    assert (values["freeze_depth"], values["neck"], values["head"]) == ("all", "gem", "linear")
