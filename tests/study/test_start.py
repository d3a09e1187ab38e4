"""``start: candidates``: one standard fine-tune of each (backbone, weights) candidate before the sampler."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest

from tl_bench.errors import SpecError
from tl_bench.spec import load_spec
from tl_bench.spec.ranges import CategoricalRange
from tl_bench.study import RunOptions, run_spec
from tl_bench.study.space import SearchSpace
from tl_bench.study.start import candidate_starts, recipe_value

from .conftest import small_spec

TWO_BY_TWO = {
    "backbones": [{"name": "test_resnet", "weights": ["scratch", "pretrained"]},
                  {"name": "test_convnext", "weights": ["scratch", "pretrained"]}],
    "freeze_depth": ["all", 2, 0],
    "neck": ["gem", "gap"],
    "head": ["linear"],
    "lr": {"low": 1.0e-3, "high": 2.0e-2, "log": True},
    "epochs": [4, 2, 3],
    "weight_decay": {"low": 0.0, "high": 0.1},
    "batch_size": {"low": 16, "high": 64, "step": 16},
}


SPEC_ORDER = [("test_resnet", "scratch"), ("test_resnet", "pretrained"),
              ("test_convnext", "scratch"), ("test_convnext", "pretrained")]


def _space(tmp_path: Path, sampler: dict | None = None, **space_changes: object) -> SearchSpace:
    spec = load_spec(small_spec(tmp_path, space={**TWO_BY_TWO, **space_changes}, start="candidates", fixed={},
                                sampler=sampler or {"name": "random", "seed": 0}))
    return SearchSpace(spec, {"test_resnet": 4, "test_convnext": 4})


def _order(starts: list[dict]) -> list[tuple[str, str]]:
    return [(p["backbone"], p[f"weights@{p['backbone']}"]) for p in starts]


def test_the_standard_recipe_is_the_centre_of_each_range_and_the_longest_training(tmp_path: Path) -> None:
    space = _space(tmp_path)
    assert recipe_value("lr", space.hyper["lr"]) == pytest.approx(4.47e-3)  # geometric centre of a log range
    assert recipe_value("weight_decay", space.hyper["weight_decay"]) == pytest.approx(0.05)
    assert recipe_value("batch_size", space.hyper["batch_size"]) == 48  # centre 40, snapped to the step of 16
    assert recipe_value("epochs", space.hyper["epochs"]) == 4
    assert recipe_value("epochs", CategoricalRange(choices=[1, 3, 2])) == 3
    assert recipe_value("optimizer", CategoricalRange(choices=["lion", "adamw"])) == "lion"  # the first listed


def test_each_candidate_starts_once_with_a_full_fine_tune(tmp_path: Path) -> None:
    starts = candidate_starts(_space(tmp_path))
    assert sorted(_order(starts)) == sorted(SPEC_ORDER)  # every candidate exactly once
    for params in starts:
        assert params[f"freeze_depth@{params['backbone']}"] == "0"
        assert params["neck"] == "gem"
        assert (params["lr"], params["epochs"], params["batch_size"]) == (pytest.approx(4.47e-3), 4, 48)


def test_without_screening_the_order_is_shuffled_by_the_sampler_seed_and_reproducible(tmp_path: Path) -> None:
    orders = {}
    for seed in range(8):
        for name in ("tpe", "random"):  # the seed decides, whichever sampler carries it
            order = _order(candidate_starts(_space(tmp_path, {"name": name, "seed": seed})))
            assert order == _order(candidate_starts(_space(tmp_path, {"name": name, "seed": seed})))  # reproducible
            assert orders.setdefault(seed, order) == order
            assert sorted(order) == sorted(SPEC_ORDER)  # a permutation of the spec's candidates
    assert len({tuple(order) for order in orders.values()}) > 2  # the seed changes the order
    assert {order[0] for order in orders.values()} != {SPEC_ORDER[0]}  # the first listed is not always first
    # the order follows the candidates, not other fields: a narrower lr range leaves it as it was
    narrower = _space(tmp_path, {"name": "random", "seed": 3}, lr={"low": 2.0e-3, "high": 4.0e-3, "log": True})
    assert _order(candidate_starts(narrower)) == orders[3]
    unseeded = _order(candidate_starts(_space(tmp_path, {"name": "random"})))
    assert sorted(unseeded) == sorted(SPEC_ORDER)


def test_screening_order_comes_first_and_a_space_without_depth_0_starts_shallowest(tmp_path: Path) -> None:
    space = _space(tmp_path, freeze_depth=["all", 2])
    ranking = ["test_convnext|pretrained", "test_resnet|scratch", "test_resnet|pretrained", "test_convnext|scratch"]
    for seed in range(4):  # screening's ranking is the order, whatever the sampler's seed
        ranked = candidate_starts(_space(tmp_path, {"name": "random", "seed": seed}, freeze_depth=["all", 2]), ranking)
        assert [f"{b}|{w}" for b, w in _order(ranked)] == ranking
    starts = candidate_starts(space, ranking[:2])
    assert _order(starts)[:2] == [("test_convnext", "pretrained"), ("test_resnet", "scratch")]
    assert {p[f"freeze_depth@{p['backbone']}"] for p in starts} == {"2"}
    assert len(starts) == 4  # candidates screening did not rank still start, after the ranked ones


def test_a_grid_gets_no_start(tmp_path: Path) -> None:
    lists = {"backbones": ["test_resnet"], "freeze_depth": [0, "all"], "neck": ["gap"], "head": ["linear"],
             "lr": [1.0e-3, 1.0e-2]}
    for sampler, count in (("random", 1), ("grid", 0)):
        spec = load_spec(small_spec(tmp_path, start="candidates", sampler={"name": sampler}, space=lists))
        assert len(candidate_starts(SearchSpace(spec, {"test_resnet": 4}))) == count


def test_an_unknown_start_names_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"start.*'defaults'.*sampler.*candidates"):
        load_spec(small_spec(tmp_path, start="defaults"))


@pytest.mark.slow
def test_a_study_runs_every_candidate_first_then_samples(tmp_path: Path, mlflow_db: str) -> None:
    space = {"backbones": [{"name": "test_resnet", "weights": ["scratch"]}, {"name": "test_convnext", "weights": ["scratch"]}],
             "freeze_depth": [0, "all"], "neck": ["gap"], "head": ["linear"],
             "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}}
    spec = load_spec(small_spec(tmp_path, space=space, start="candidates", budget={"n_trials": 3},
                                sampler={"name": "random", "seed": 1},  # a seed that puts the second listed first
                                datasets=[{"name": "digits", "img_size": 32, "train_size": 64, "val_size": 32}],
                                fixed={"epochs": 1, "batch_size": 32}))
    run_spec(spec, RunOptions(), quiet=True)
    trials = optuna.load_study(study_name="small/digits", storage=spec.storage_url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    expected = [p["backbone"] for p in candidate_starts(SearchSpace(spec, {"test_resnet": 5, "test_convnext": 5}))]
    assert [t.params["backbone"] for t in trials[:2]] == expected == ["test_convnext", "test_resnet"]
    for trial in trials[:2]:
        assert trial.params[f"freeze_depth@{trial.params['backbone']}"] == "0"
        assert trial.params["lr"] == pytest.approx(3.16e-3)
        assert trial.system_attrs.get("fixed_params")  # enqueued, not sampled
    assert "fixed_params" not in trials[2].system_attrs  # then the sampler
    mlflow.set_tracking_uri(spec.tracking_uri)
    (parent,) = [r for r in mlflow.search_runs(experiment_names=["small"], output_format="list")
                 if r.data.tags.get("tlb.kind") == "study"]
    assert parent.data.tags["tlb.start"] == "candidates: 2 standard fine-tune(s) first"
