"""Samplers and pruners built from a spec's plain fields are the Optuna objects they name."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, get_args

import optuna
import pytest

from tl_bench.spec import PRUNER_NAMES, SAMPLER_NAMES, PrunerSpec, SamplerSpec, load_spec
from tl_bench.study.samplers import PRUNER_CLASSES, SAMPLER_CLASSES, make_pruner, make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("sampler", "cls"),
    [
        ({"name": "tpe", "seed": 3, "n_startup_trials": 2}, optuna.samplers.TPESampler),
        ({"name": "random", "seed": 3}, optuna.samplers.RandomSampler),
        ({"name": "gp", "seed": 3}, optuna.samplers.GPSampler),
        ({"name": "qmc", "seed": 3, "qmc_type": "halton"}, optuna.samplers.QMCSampler),
    ],
)
def test_make_sampler(make_spec: Callable[..., Path], sampler: dict[str, Any], cls: type) -> None:
    spec = load_spec(make_spec(sampler=sampler))
    assert isinstance(make_sampler(spec), cls)
    # the same seed proposes the same point; a worker offset proposes another
    def first_lr(s: optuna.samplers.BaseSampler) -> float:
        study = optuna.create_study(sampler=s)
        study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=1)
        return study.trials[0].params["lr"]

    assert first_lr(make_sampler(spec)) == first_lr(make_sampler(spec))
    assert first_lr(make_sampler(spec)) != first_lr(make_sampler(spec, seed_offset=1))


def test_grid_sampler_covers_the_given_grid(make_spec: Callable[..., Path]) -> None:
    space = {"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"], "lr": [1e-3, 1e-2]}
    spec = load_spec(make_spec(sampler={"name": "grid", "seed": 0}, space=space))
    with pytest.raises(ValueError, match="grid_space"):
        make_sampler(spec)
    study = optuna.create_study(sampler=make_sampler(spec, grid_space={"lr": spec.space.hyper["lr"].choices}))
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), n_trials=10)
    assert sorted(t.params["lr"] for t in study.trials) == [1e-3, 1e-2]  # the grid ends the study


def test_nsga2_runs_a_two_objective_study(make_spec: Callable[..., Path]) -> None:
    spec = load_spec(make_spec(
        sampler={"name": "nsga2", "seed": 0, "population_size": 4}, pruner="none", objective={"cost": "params_trainable"}
    ))
    study = optuna.create_study(directions=spec.objective.directions, sampler=make_sampler(spec))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=6)
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler) and len(study.best_trials) >= 1
    assert spec.objective.metrics == ["val_acc", "params_trainable"]


@pytest.mark.parametrize(
    ("pruner", "cls"),
    [
        ("none", optuna.pruners.NopPruner),
        ({"name": "median", "n_startup_trials": 1}, optuna.pruners.MedianPruner),
        ({"name": "successive_halving", "min_resource": 1}, optuna.pruners.SuccessiveHalvingPruner),
        ({"name": "hyperband", "min_resource": 1, "max_resource": 2}, optuna.pruners.HyperbandPruner),
    ],
)
def test_make_pruner(make_spec: Callable[..., Path], pruner: Any, cls: type) -> None:
    assert isinstance(make_pruner(load_spec(make_spec(pruner=pruner))), cls)


def test_median_pruner_from_spec_prunes_a_worse_trial(make_spec: Callable[..., Path]) -> None:
    pruner = {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}
    study = optuna.create_study(direction="maximize", pruner=make_pruner(load_spec(make_spec(pruner=pruner))))
    curves = iter([[0.5, 0.8], [0.1, 0.2]])

    def objective(trial: optuna.Trial) -> float:
        for epoch, acc in enumerate(next(curves), start=1):
            trial.report(acc, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]


@pytest.mark.parametrize("kind", ["sampler", "pruner"])
def test_option_defaults_are_optunas_own(kind: str) -> None:
    union = SamplerSpec if kind == "sampler" else PrunerSpec
    classes = SAMPLER_CLASSES if kind == "sampler" else PRUNER_CLASSES
    specs = {get_args(m.model_fields["name"].annotation)[0]: m for m in get_args(get_args(union)[0])}
    assert set(specs) == set(SAMPLER_NAMES if kind == "sampler" else PRUNER_NAMES) == set(classes)
    for name, spec_cls in specs.items():
        params = inspect.signature(classes[name]).parameters
        for key, value in spec_cls(name=name).options().items():
            assert key in params, (name, key)
            if params[key].default is not inspect.Parameter.empty:
                assert params[key].default == value, (name, key)
