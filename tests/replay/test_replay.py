"""Replays of real small studies: the study's own sampler and pruner repeat its decisions exactly, other
strategies run on the table, and a table that does not cover the space is refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from tests.study.conftest import small_spec
from tl_bench.cli import main
from tl_bench.replay import ReplayError, read_table, recorded_search, replay_seeds, simulate, time_to_quality
from tl_bench.replay.report import TOLERANCE
from tl_bench.replay.simulate import Search, SimTrial
from tl_bench.spec import StudySpec, load_spec
from tl_bench.study import RunOptions, run_spec

pytestmark = pytest.mark.slow
SPACE = {"backbones": ["test_resnet"], "freeze_depth": [0, "all"], "neck": ["gap", "gem"], "head": ["linear", "cosine"]}


def _study(folder: Path, mlflow_template: Path, **overrides: Any) -> Path:
    """A small study on digits run to its end in ``folder``, with real stores; returns its study file."""
    (folder / "runs").mkdir()
    (folder / "runs" / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    overrides = {"fixed": {"epochs": 3, "batch_size": 64, "lr": 0.01}, "keep_models": {"top_k": 0}, **overrides}
    path = small_spec(folder, **overrides)
    run_spec(load_spec(path), RunOptions(), quiet=True)
    return path


def _optuna_trials(spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=spec.study_name(spec.datasets[0]), storage=spec.storage_url)
    return study.trials


def _combo_label(params: dict[str, Any]) -> tuple[str, ...]:
    backbone, weights, depth, neck, head, *method = params["combo"].split("|")
    return backbone, weights, depth, neck, head, method[0] if method else "full"


@pytest.fixture(scope="module")
def grid_pruned(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Path:
    """A seeded grid over 8 configurations with a median pruner that prunes after two trials."""
    return _study(tmp_path_factory.mktemp("grid_pruned"), mlflow_template, space=SPACE,
                  sampler={"name": "grid", "seed": 0},
                  pruner={"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}, budget={"n_trials": 8})


@pytest.fixture(scope="module")
def grid_full(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Path:
    """A seeded grid over 4 configurations, every trial complete: a table any sampler can be replayed on."""
    space = {**SPACE, "freeze_depth": ["all"]}
    return _study(tmp_path_factory.mktemp("grid_full"), mlflow_template, space=space,
                  sampler={"name": "grid", "seed": 0}, pruner={"name": "none"}, budget={"n_trials": 4},
                  fixed={"epochs": 2, "batch_size": 64, "lr": 0.01})


def test_the_grid_and_its_pruner_replay_the_study_exactly(grid_pruned: Path) -> None:
    spec = load_spec(grid_pruned)
    live = _optuna_trials(spec)
    assert any(t.state.name == "PRUNED" for t in live) and any(t.state.name == "COMPLETE" for t in live)
    table = read_table(spec, "digits")
    (search,) = replay_seeds(table, spec, sampler="grid", pruner="median", seeds=1)
    assert search.seed == 0 and len(search.trials) == len(live) == 8
    replayed = [(t.config, t.state, t.epochs) for t in search.trials]
    expected = [(" ".join(f"{n}={v}" for n, v in zip(table.names, _combo_label(t.params))), t.state.name,
                 max(t.intermediate_values)) for t in live]
    assert replayed == expected
    # the recorded study, charged the epochs it ran, costs what the replay of it costs
    assert recorded_search(table).seconds == pytest.approx(search.seconds)
    assert [t.state for t in recorded_search(table).trials] == [t.state.name for t in live]


def test_a_seeded_random_sampler_and_its_pruner_replay_the_study_exactly(
        tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> None:
    # two configurations, five trials: repeats are answered by the recorded trials of a configuration in turn
    space = {**SPACE, "neck": ["gap"], "head": ["linear"]}
    path = _study(tmp_path_factory.mktemp("random"), mlflow_template, space=space, sampler={"name": "random", "seed": 0},
                  pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}, budget={"n_trials": 5})
    spec = load_spec(path)
    live = _optuna_trials(spec)
    table = read_table(spec, "digits")
    (search,) = replay_seeds(table, spec, sampler="random", pruner="median", seeds=1)
    assert {t.state.name for t in live} == {"COMPLETE", "PRUNED"}
    assert search.seed == 0
    depths = [t.config.split("freeze_depth=")[1].split(" ")[0] for t in search.trials]
    assert depths == [t.params["freeze_depth@test_resnet"] for t in live]
    assert [(t.state, t.epochs) for t in search.trials] == [(t.state.name, max(t.intermediate_values)) for t in live]
    # another seed is another search over the same table
    other = simulate(table, spec, sampler="random", pruner="median", seed=1)
    assert len(other.trials) == len(live)


def test_other_samplers_run_on_a_complete_table(grid_full: Path) -> None:
    spec = load_spec(grid_full)
    table = read_table(spec, "digits")
    assert len(table.by_config) == 4 and all(r.complete and len(r.acc) == 2 for r in table.records)
    assert all(c > 0 for r in table.records for c in r.costs)  # the per-epoch cost the trials recorded
    for sampler in ("tpe", "random", "qmc"):
        searches = replay_seeds(table, spec, sampler=sampler, pruner="none", seeds=2)
        assert [s.seed for s in searches] == [0, 1]
        for search in searches:
            assert len(search.trials) == 4 and all(t.state == "COMPLETE" and t.epochs == 2 for t in search.trials)
            # every simulated trial costs what its configuration's recorded trial cost
            costs = {r.label: sum(r.costs) for r in table.records}
            assert [t.seconds for t in search.trials] == pytest.approx([costs[t.config] for t in search.trials])
    # a budget in simulated seconds: trials are asked until it is spent, the last one may pass it
    cheapest = min(sum(r.costs) for r in table.records)
    budgeted = simulate(table, spec, sampler="random", seed=0, budget_s=2.5 * cheapest)
    assert sum(t.seconds for t in budgeted.trials[:-1]) < 2.5 * cheapest <= budgeted.seconds


def test_time_to_quality_counts_every_epoch_run_until_a_trial_completes_near_the_best() -> None:
    trials = (SimTrial(0, "a", "COMPLETE", 2, 4.0, 0.50), SimTrial(1, "b", "PRUNED", 1, 1.5, 0.95),
              SimTrial(2, "c", "COMPLETE", 2, 3.0, 0.895), SimTrial(3, "d", "COMPLETE", 2, 3.0, 0.90))
    search = Search("x", 0, trials)
    assert time_to_quality(search, 0.90 - TOLERANCE) == pytest.approx(8.5)  # a pruned trial never counts as reached
    assert time_to_quality(search, 0.95) is None


def test_the_command_compares_strategies_in_json_and_in_a_table(grid_full: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(grid_full), "--dataset", "digits", "--sampler", "tpe", "--seeds", "3", "--json"])
    assert exit_info.value.code == 0
    report = json.loads(capsys.readouterr().out)
    table = read_table(load_spec(grid_full), "digits")
    assert report["best_val_acc"] == pytest.approx(table.best_val_acc)
    assert report["target"] == pytest.approx(table.best_val_acc - 0.01)
    recorded, tpe = report["strategies"]
    assert recorded["strategy"] == "recorded grid+none" and tpe["strategy"] == "tpe+none" and tpe["seeds"] == 3
    # the recorded study reaches the target when its first trial within a point of the best completes
    seconds, expected = 0.0, None
    for record in table.records:
        seconds += sum(record.costs)
        if expected is None and record.final_acc >= report["target"]:
            expected = seconds
    assert recorded["median_s"] == pytest.approx(expected)
    times = [s["time_to_quality_s"] for s in tpe["searches"]]
    assert tpe["reached"] == 3 and tpe["min_s"] == pytest.approx(min(times)) and tpe["max_s"] == pytest.approx(max(times))
    assert all(s["curve"][-1][1] == pytest.approx(table.best_val_acc) for s in tpe["searches"])

    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(grid_full), "--dataset", "digits", "--sampler", "random", "--seeds", "2"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "recorded grid+none" in out and "random+none" in out and "median s" in out


def test_a_configuration_without_a_recorded_trial_is_named_in_one_line(
        grid_full: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(grid_full.read_text())
    data["space"]["head"] = ["linear", "cosine", "mlp"]  # same study and stores, a head it never ran
    wider = grid_full.with_name("wider.yaml")
    wider.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(wider), "--dataset", "digits", "--sampler", "tpe"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "head=mlp" in err and "no recorded trial" in err
    # a range of learning rates can never be covered by a table
    data["space"]["head"] = ["linear", "cosine"]
    data["sampler"] = {"name": "random", "seed": 0}
    data["space"]["lr"] = {"low": 1.0e-3, "high": 1.0e-2, "log": True}
    del data["fixed"]["lr"]
    with pytest.raises(ReplayError, match="lr is searched over a range"):
        spec = load_spec(_write(wider, data))
        simulate(read_table(spec, "digits"), spec, sampler="random")


def test_a_pruned_configuration_cannot_answer_a_strategy_that_runs_it_further(grid_pruned: Path) -> None:
    spec = load_spec(grid_pruned)
    with pytest.raises(ReplayError, match=r"recorded for 1 epoch\(s\) only \(pruned in the study\)"):
        simulate(read_table(spec, "digits"), spec, sampler="grid", pruner="none", seed=0)
    assert math.isfinite(read_table(spec, "digits").best_val_acc)


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path
