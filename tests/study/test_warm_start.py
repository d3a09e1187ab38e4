"""Warm start: a new dataset study begins with what won in another study of the same storage."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest

from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.study.space import SearchSpace

from .conftest import small_spec

pytestmark = pytest.mark.slow


def test_the_best_configurations_of_a_finished_study_run_first(tmp_path: Path, mlflow_db: str) -> None:
    source = load_spec(small_spec(tmp_path, name="src", budget={"n_trials": 4}))
    run_spec(source, RunOptions(), quiet=True)
    finished = optuna.load_study(study_name="src/digits", storage=source.storage_url)
    best_two = sorted(finished.get_trials(states=(optuna.trial.TrialState.COMPLETE,)),
                      key=lambda t: -t.values[0])[:2]

    # Another spec in the same storage: its lr range excludes nothing, its heads exclude "cosine".
    path = small_spec(tmp_path, name="dst", budget={"n_trials": 2}, storage=source.storage_url,
                      tracking_uri=source.tracking_uri, warm_start={"from": ["src/digits"], "top_k": 2},
                      space={"backbones": ["test_resnet"], "freeze_depth": [0, "all"], "neck": ["gap", "gem"],
                             "head": ["linear", "mlp"], "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}})
    target = load_spec(path)
    run_spec(target, RunOptions(), quiet=True)
    started = optuna.load_study(study_name="dst/digits", storage=target.storage_url).trials[:2]
    for want, got in zip(best_two, started):
        for name in ("lr", "neck", "freeze_depth@test_resnet"):
            if name in want.params:
                assert got.params[name] == want.params[name]
        if want.params.get("head") in ("linear", "mlp"):
            assert got.params["head"] == want.params["head"]
    mlflow.set_tracking_uri(target.tracking_uri)
    (parent,) = [r for r in mlflow.search_runs(experiment_names=["dst"], output_format="list")
                 if r.data.tags.get("tlb.kind") == "study"]
    assert parent.data.tags["tlb.warm_start"].startswith("src/digits: 2 configuration(s)")


def test_parameters_outside_the_space_are_left_to_the_sampler(tmp_path: Path, mlflow_db: str) -> None:
    spec = load_spec(small_spec(tmp_path))
    space = SearchSpace(spec, {"test_resnet": 5})
    kept, dropped = space.accepts({"backbone": "test_vit", "lr": 0.5, "head": "cosine", "neck": "gem",
                                   "weight_decay": 0.1})
    assert kept == {"head": "cosine", "neck": "gem"}
    assert sorted(dropped) == ["backbone='test_vit'", "lr=0.5", "weight_decay=0.1"]


def test_sources_that_saw_held_out_images_are_named_in_one_line() -> None:
    from tl_bench.config import DataSettings
    from tl_bench.data.overlap import shared_images
    from tl_bench.study.warm_start import overlap_warning, record_data

    target = DataSettings(dataset="digits", train_size=300, val_size=100, split_seed=0)
    same = shared_images(target, target)
    assert same == {"val": 100, "test": same["test"]} and same["test"] > 100  # every held-out image, by content
    other_split = optuna.create_study(study_name="digits-other-split")
    record_data(other_split, DataSettings(dataset="digits", img_size=24, train_size=600, val_size=200, split_seed=1))
    elsewhere = optuna.create_study(study_name="shapes")
    record_data(elsewhere, DataSettings(dataset="shapes", train_size=200, val_size=50))
    unknown = optuna.create_study(study_name="unrecorded")  # made before studies recorded their data
    line = overlap_warning([other_split, elsewhere, unknown], target)
    assert line is not None and "\n" not in line and line.startswith("warning: ")
    assert "digits-other-split (" in line and "shapes" not in line and "unrecorded" not in line
    assert overlap_warning([elsewhere, unknown], target) is None
