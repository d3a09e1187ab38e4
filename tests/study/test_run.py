"""End-to-end studies on digits with a tiny backbone: real Optuna storage, real MLflow store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.tracking import RUN_NOTE
from tl_bench.tracking.assets import plotly_asset_name

pytestmark = pytest.mark.slow


def _runs(spec):  # type: ignore[no-untyped-def]
    return mlflow.search_runs(experiment_names=[spec.name], output_format="list", max_results=5000,
                              run_view_type=mlflow.entities.ViewType.ALL) if mlflow.set_tracking_uri(spec.tracking_uri) is None else []


def _split(runs):  # type: ignore[no-untyped-def]
    parents = [r for r in runs if r.data.tags.get("tlb.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("tlb.kind") == "trial"]
    return parents, children


def test_study_records_one_parent_and_a_child_per_trial_and_resumes(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(make_spec(description="A small study.", pruner={"name": "median"}))
    outcome = run_spec(spec, RunOptions(n_trials=3), quiet=True)[0]
    study = optuna.load_study(study_name="small/digits", storage=spec.storage_url)  # plain Optuna opens it
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 3 and outcome.counts["COMPLETE"] + outcome.counts["PRUNED"] == 3

    parents, children = _split(_runs(spec))
    assert len(parents) == 1 and parents[0].info.run_id == outcome.parent_run_id
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["n_complete"] + parents[0].data.metrics["n_pruned"] == 3
    assert len(children) == 3
    by_id = {r.info.run_id: r for r in children}
    for trial in study.trials:
        run = by_id[trial.user_attrs["mlflow_run_id"]]  # each side finds the other
        assert run.data.tags["tlb.trial"] == str(trial.number)
        assert run.data.tags["tlb.study"] == "small" and run.data.tags["mlflow.parentRunId"] == outcome.parent_run_id
        assert run.data.tags["tlb.state"] == trial.state.name
        for param in ("backbone", "weights", "freeze_depth", "neck", "head", "lr", "epochs", "batch_size", "seed"):
            assert param in run.data.params
        if trial.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED"
            assert run.data.metrics["val_acc"] == pytest.approx(trial.values[0])
            for metric in ("test_acc", "params_total", "params_trainable", "flops_fwd_per_image",
                           "train_time_s", "train_throughput_ips", "peak_mem_mb"):
                assert metric in run.data.metrics
            assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == "digits"

    _check_study_record(spec, parents[0], by_id)

    # Same command with a larger budget tops the study up; finished trials are not repeated.
    run_spec(spec, RunOptions(n_trials=5), quiet=True)
    study = optuna.load_study(study_name="small/digits", storage=spec.storage_url)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 5
    assert [t.number for t in study.trials] == list(range(len(study.trials)))
    parents, children = _split(_runs(spec))
    assert len(parents) == 1 and len(children) == len(study.trials) == 5
    assert len({r.data.tags["tlb.trial"] for r in children}) == 5
    client = mlflow.MlflowClient(spec.tracking_uri)
    (assets,) = client.search_runs([client.get_experiment_by_name("tl-bench-assets").experiment_id])
    assert [a.path for a in client.list_artifacts(assets.info.run_id)] == [plotly_asset_name()]  # one copy per store


def _check_study_record(spec, parent, trials) -> None:  # type: ignore[no-untyped-def]
    """The parent run holds how the study searched, its study file, plots sharing the store's plotly.js,
    and a link to its best trial; the experiment opens on the trials in MLflow's model-training view."""
    client = mlflow.MlflowClient(spec.tracking_uri)
    params = parent.data.params
    assert (params["sampler.name"], params["budget.n_trials"], params["objective.metric"]) == ("random", "3", "val_acc")
    assert params["space.freeze_depth"] == "0, all" and params["space.hyper.lr.log"] == "True"
    assert params["fixed.epochs"] == "2" and params["pruner.name"] == "median"
    (study_file,) = client.list_artifacts(parent.info.run_id, "study")
    assert study_file.path == "study/small.yaml"
    assert Path(client.download_artifacts(parent.info.run_id, study_file.path)).read_text() == spec.source_path.read_text()
    best = client.get_run(parent.info.run_id).data.tags
    assert best["tlb.best_run_link"] == f"#/experiments/{parent.info.experiment_id}/runs/{best['tlb.best_run_id']}" \
        "?workflowType=machine_learning"
    assert best["tlb.best_run_id"] in trials and f"[trial {best['tlb.best_trial']}](#/experiments/" in best[RUN_NOTE]
    assert best[RUN_NOTE].startswith("A small study.\n\nBest trial: ")
    plots = Path(client.download_artifacts(parent.info.run_id, "optuna_plots.html")).read_text()
    assert len(plots) < 500_000 and f"get-artifact?path={plotly_asset_name()}" in plots
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["mlflow.note.content"] == "A small study."
    view = json.loads(experiment.tags["mlflow.sharedViewState.tl-bench-trials"])
    assert view["selectedColumns"][:3] == ["params.`dataset`", "params.`backbone`", "params.`weights`"]
    assert "metrics.`val_acc`" in view["selectedColumns"] and view["searchFilter"] == "tags.`tlb.kind` = 'trial'"


def test_failing_trials_are_recorded_and_the_study_ends(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(make_spec(fixed={"epochs": 2, "lr": 1.0e30, "optimizer": "sgd"},
                               space={"backbones": ["test_resnet"], "freeze_depth": [0]}))
    outcome = run_spec(spec, RunOptions(n_trials=2), quiet=True)[0]
    # bounded: a budget of 2 starts no more than 2 trials when every one fails
    assert outcome.counts["FAIL"] == 2 and outcome.counts["COMPLETE"] == 0
    _, children = _split(_runs(spec))
    assert len(children) == outcome.counts["FAIL"]
    for run in children:
        assert run.info.status == "FAILED" and run.data.tags["tlb.state"] == "FAIL"
        assert "NonFiniteLossError" in run.data.tags["tlb.error"]


def test_a_bad_trial_is_pruned_and_marked_killed(make_spec) -> None:  # type: ignore[no-untyped-def]
    good = {"backbone": "test_resnet", "freeze_depth": 0, "neck": "gap", "head": "linear", "lr": 1.0e-2}
    bad = {**good, "lr": 1.0e-7}
    spec = load_spec(make_spec(
        space={"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"],
               "lr": {"low": 1.0e-7, "high": 1.0e-2, "log": True}},
        fixed={"epochs": 3, "batch_size": 32},
        pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        baselines=[good, bad],
    ))
    run_spec(spec, RunOptions(n_trials=2), quiet=True)
    study = optuna.load_study(study_name="small/digits", storage=spec.storage_url)
    assert [t.state for t in study.trials[:2]] == [TrialState.COMPLETE, TrialState.PRUNED]
    _, children = _split(_runs(spec))
    pruned = [r for r in children if r.data.tags["tlb.trial"] == "1"][0]
    assert pruned.info.status == "KILLED" and pruned.data.tags["tlb.state"] == "PRUNED"
    assert "epoch_val_acc" in pruned.data.metrics  # its curve up to the pruning epoch is kept
    curve = mlflow.MlflowClient(spec.tracking_uri).get_metric_history(pruned.info.run_id, "epoch_val_acc")
    assert pruned.data.tags["tlb.pruned_epoch"] == str(max(m.step for m in curve))
    assert re.fullmatch(r"MedianPruner: val_acc \d\.\d{4} at epoch \d", pruned.data.tags["tlb.pruned_reason"])
    assert pruned.data.tags[RUN_NOTE].startswith(f"Pruned at epoch {pruned.data.tags['tlb.pruned_epoch']} (")


def test_a_trial_is_not_pruned_at_its_last_epoch(make_spec) -> None:  # type: ignore[no-untyped-def]
    # Stopping after the last epoch saves nothing: the worse trial completes, with its result.
    good = {"backbone": "test_resnet", "freeze_depth": 0, "neck": "gap", "head": "linear", "lr": 1.0e-2}
    spec = load_spec(make_spec(
        space={"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"],
               "lr": {"low": 1.0e-7, "high": 1.0e-2, "log": True}},
        fixed={"epochs": 1, "batch_size": 32},
        pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        baselines=[good, {**good, "lr": 1.0e-7}],
    ))
    run_spec(spec, RunOptions(n_trials=2), quiet=True)
    first, second = optuna.load_study(study_name="small/digits", storage=spec.storage_url).trials[:2]
    assert first.state == second.state == TrialState.COMPLETE and second.value < first.value
    assert second.intermediate_values == {1: second.value}


def test_without_a_pruner_a_trial_records_every_epoch_with_its_end(make_spec) -> None:  # type: ignore[no-untyped-def]
    # With no pruner to read them, intermediate values are written once, with the trial's results.
    spec = load_spec(make_spec(
        space={"backbones": ["test_resnet"], "freeze_depth": ["all"], "neck": ["gap"], "head": ["linear"],
               "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}},
        fixed={"epochs": 3, "batch_size": 64},
        pruner={"name": "none"},
    ))
    run_spec(spec, RunOptions(n_trials=2), quiet=True)
    study = optuna.load_study(study_name="small/digits", storage=spec.storage_url)
    client = mlflow.MlflowClient(spec.tracking_uri)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        curve = {m.step: m.value for m in client.get_metric_history(trial.user_attrs["mlflow_run_id"], "epoch_val_acc")}
        assert trial.intermediate_values == pytest.approx(curve) and sorted(curve) == [1, 2, 3]
        # the parts with one choice, the worker and the results: each attribute as before
        assert trial.user_attrs["neck"] == "gap" and trial.user_attrs["freeze_depth@test_resnet"] == "all"
        assert {"host", "pid", "threads", "test_acc", "train_time_s", "n_stages"} <= set(trial.user_attrs)


def test_multi_objective_study_gives_a_pareto_front(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(make_spec(objective={"metric": "val_acc", "cost": "params_trainable"}, sampler={"name": "nsga2", "seed": 0}))
    run_spec(spec, RunOptions(n_trials=3), quiet=True)
    study = optuna.load_study(study_name="small/digits", storage=spec.storage_url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.best_trials and all(len(t.values) == 2 for t in study.best_trials)
    parents, _ = _split(_runs(spec))
    artifacts = mlflow.MlflowClient(spec.tracking_uri).list_artifacts(parents[0].info.run_id)
    assert "optuna_plots.html" in {a.path for a in artifacts}


def test_grid_study_ends_cleanly_when_the_grid_is_done(make_spec) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from tl_bench.cli.app import app

    path = make_spec(
        space={"backbones": ["test_resnet"], "freeze_depth": [0, "all"], "neck": ["gap"], "head": ["linear"], "lr": [0.005]},
        fixed={"epochs": 1, "batch_size": 64},
        sampler={"name": "grid"},
        budget={"n_trials": 5},  # more than the grid's two points
    )
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="small/digits", storage=load_spec(path).storage_url)
    assert len(study.trials) == 2 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t.params["combo"] for t in study.trials}) == 2  # each grid point once


def test_the_closing_commands_are_never_wrapped(make_spec, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from tl_bench.cli.run_cmd import _print_results

    path = make_spec()
    spec = load_spec(path)
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal
    monkeypatch.chdir(path.parent)
    _print_results(spec, [], top=5)
    lines = capsys.readouterr().out.splitlines()
    assert "Browse every trial in the MLflow UI:  tl-bench ui --spec small.yaml" in lines  # relative to the cwd
    assert f"  (or: mlflow ui --backend-store-uri {spec.tracking_uri})" in lines
    assert "Export the leaderboard:  tl-bench leaderboard --spec small.yaml --csv leaderboard.csv" in lines
