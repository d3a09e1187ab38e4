"""What a study looks like in the MLflow UI and on its dashboard: run names, the trials view's columns and
charts, flags as tags, the assets experiment's place, importances' minimum, pretrained against scratch."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution

from tests.report.test_trial_store import TrialStore
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.report.dashboard_definition import ImportancePanel, ScratchGainPanel
from tl_bench.report.frame import importance_frame
from tl_bench.report.panels import importance_panel, scratch_gain, scratch_gain_panel
from tl_bench.report.ui import ui_command
from tl_bench.tracking.ui_app import landing_page, open_route
from tl_bench.study.merged_params import merged_study
from tl_bench.study.summary import importances, plots_html
from tl_bench.tracking import MIN_IMPORTANCE_TRIALS, Tracker, shown_value
from tl_bench.tracking.assets import ASSETS_EXPERIMENT
from tl_bench.tracking.view import SHARED_VIEW_PREFIX, VIEW_KEY, experiment_path, trials_view


def test_trial_run_names_are_unique_across_the_datasets_of_a_study(mlflow_db: str) -> None:
    tracker = Tracker(mlflow_db, "two")
    names = set()
    for dataset in ("digits", "shapes"):
        parent = tracker.create_parent_run(study="two", dataset=dataset, optuna_study=f"two/{dataset}")
        config = TrialConfig(dataset=dataset, backbone="test_resnet", freeze_depth=1)
        run_id = tracker.start_trial(parent, config, study="two", dataset=dataset, trial_number=1)
        names.add(MlflowClient(mlflow_db).get_run(run_id).info.run_name)
    assert names == {"digits-test_resnet-scratch-f1-gap-linear-t1", "shapes-test_resnet-scratch-f1-gap-linear-t1"}


def test_the_trials_view_shows_dataset_and_cost_columns_and_charts_accuracy_against_cost() -> None:
    view = trials_view()
    columns = view["selectedColumns"]
    assert columns[0] == "params.`dataset`"  # one table for every dataset: which is which
    for metric in ("val_acc", "params_total", "params_trainable", "flops_fwd_per_image", "peak_mem_mb"):
        assert f"metrics.`{metric}`" in columns
    charts = view["compareRunCharts"]
    scatters = {(c["xaxis"]["key"], c["yaxis"]["key"]) for c in charts if c["type"] == "SCATTER"}
    assert {("train_time_s", "val_acc"), ("params_trainable", "val_acc"), ("backbone", "val_acc"),
            ("weights", "val_acc"), ("freeze_depth", "val_acc")} <= scatters
    parallel = next(c for c in charts if c["type"] == "PARALLEL")
    assert {"neck", "head", "freeze_depth", "weights"} <= set(parallel["selectedParams"])
    assert parallel["selectedMetrics"] == ["val_acc"]
    # MLflow's one chart per metric lands in its own folded sections, below tl-bench's
    sections = view["compareRunSections"]
    assert sections[0]["display"] and not any(s["display"] for s in sections[1:])
    assert {s["name"] for s in sections[1:]} == {"Model metrics", "System metrics"}


def test_flags_are_tags_and_measurements_are_logged_to_six_digits(mlflow_db: str) -> None:
    tracker = Tracker(mlflow_db, "flags")
    parent = tracker.create_parent_run(study="flags", dataset="digits", optuna_study="flags/digits")
    run_id = tracker.start_trial(parent, TrialConfig(dataset="digits", backbone="test_resnet"), study="flags",
                                 dataset="digits", trial_number=0)
    result = TrialResult(val_acc=0.18923933209647495, test_acc=0.5, train_time_s=17.338215246000118,
                         params_total=86_000_123, cache_used=True, cache_hit=False, ema_tested=True)
    tracker.finish_trial(run_id, "COMPLETE", result=result)
    run = MlflowClient(mlflow_db).get_run(run_id)
    assert not {"cache_used", "cache_hit", "ema_tested"} & set(run.data.metrics)
    assert (run.data.tags["tlb.cache_used"], run.data.tags["tlb.cache_hit"]) == ("true", "false")
    assert run.data.metrics["val_acc"] == 0.189239 and run.data.metrics["train_time_s"] == 17.3382
    assert run.data.metrics["params_total"] == 86_000_123  # counts stay exact
    assert shown_value(0.25) == 0.25


def test_the_assets_experiment_is_older_than_every_study_experiment(mlflow_db: str) -> None:
    Tracker(mlflow_db, "first")
    tracker = Tracker(mlflow_db, "second")
    tracker.plotly_head()  # logs the shared plotly.js into the assets experiment
    client = MlflowClient(mlflow_db)
    listed = [e.name for e in client.search_experiments(order_by=["last_update_time DESC"])]  # as MLflow's UI lists
    assert listed[:2] == ["second", "first"] and listed.index(ASSETS_EXPERIMENT) == 2


def test_tl_bench_ui_runs_its_app_and_opens_only_routes_of_its_server(tmp_path: Path) -> None:
    command = ui_command(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert command[command.index("--app-name") + 1] == "tl-bench"
    route = experiment_path("7", shared=False)
    assert route == "/experiments/7/runs?workflowType=machine_learning" and "viewStateShareKey" in experiment_path("7")
    assert open_route(route) == "/tl-bench/open?to=/experiments/7/runs%3FworkflowType%3Dmachine_learning"
    page = landing_page(route)
    assert '"mlflow.workflowType_v1"' in page and '"machine_learning"' in page
    assert json.dumps(SHARED_VIEW_PREFIX + VIEW_KEY) in page and json.dumps(route) in page
    for hostile in ("https://elsewhere.example/", "//elsewhere.example", "javascript:alert(1)"):
        assert 'var to = "/experiments";' in landing_page(hostile)
    assert "</script><script>" not in landing_page("/x</script><script>alert(1)")


def _study(n: int) -> optuna.Study:
    """``n`` complete trials over two backbones, each with its own freeze depths (as tl-bench samples them)."""
    study = optuna.create_study(direction="maximize")
    rng = random.Random(0)
    depths = {"test_resnet": [0, 1, "all"], "test_vit": [0, 2, "all"]}
    for _ in range(n):
        backbone = rng.choice(list(depths))
        depth = rng.choice(depths[backbone])
        lr = rng.uniform(1e-3, 1e-1)
        value = 0.9 - 0.3 * (depth == "all") + 0.01 * rng.random()
        study.add_trial(optuna.trial.create_trial(
            params={"backbone": backbone, f"freeze_depth@{backbone}": depth, "lr": lr},
            distributions={"backbone": CategoricalDistribution(list(depths)),
                           f"freeze_depth@{backbone}": CategoricalDistribution(depths[backbone]),
                           "lr": FloatDistribution(1e-3, 1e-1, log=True)},
            value=value))
    return study


def test_per_backbone_parameters_are_one_in_the_plots_and_importances() -> None:
    merged = merged_study(_study(MIN_IMPORTANCE_TRIALS))
    assert all(set(t.params) == {"backbone", "freeze_depth", "lr"} for t in merged.trials)
    assert set(merged.trials[0].distributions["freeze_depth"].choices) == {0, 1, 2, "all"}
    found = importances(_study(MIN_IMPORTANCE_TRIALS))
    assert set(found) == {"backbone", "freeze_depth", "lr"}  # one freeze_depth, not one per backbone
    page = plots_html(_study(MIN_IMPORTANCE_TRIALS), found)
    assert "freeze_depth@" not in page and f"over {MIN_IMPORTANCE_TRIALS} complete trials" in page


def test_importances_below_the_minimum_are_left_out_with_the_reason() -> None:
    few = _study(MIN_IMPORTANCE_TRIALS - 1)
    assert importances(few) == {}
    assert f"{MIN_IMPORTANCE_TRIALS - 1} complete trials, fewer than {MIN_IMPORTANCE_TRIALS}" in plots_html(few, {})


def test_the_importance_panel_says_how_many_trials_and_leaves_out_too_few(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, study="imp")
    store.importances("digits", {"lr": 0.9, "head": 0.1}, n_trials=10)
    store.importances("shapes", {"lr": 0.5, "head": 0.5}, n_trials=40)
    store.importances("cifar", {"lr": 0.6, "head": 0.4})  # written before the count was recorded
    body = importance_panel(importance_frame(store.uri, study="imp"), ImportancePanel(kind="importance"))
    assert "digits: importances left out: 10 complete trials, fewer than 20" in body
    assert "shapes (40 complete trials)" in body and "cifar (number of trials not recorded)" in body
    assert body.count("plotly-graph-div") == 2


def _board() -> pd.DataFrame:
    rows = [("scratch", 0, "gap", "linear", 0.50), ("scratch", "all", "gap", "linear", 0.30),
            ("pretrained", 0, "gap", "linear", 0.80), ("pretrained", "all", "gem", "linear", 0.70),
            ("pretrained", 0, "gap", "linear", 0.75)]
    return pd.DataFrame([{"dataset": "digits", "backbone": "test_resnet", "weights": w, "freeze_depth": d, "neck": n,
                          "head": h, "val_acc": a} for w, d, n, h, a in rows])


def test_pretrained_against_scratch_at_each_freeze_depth() -> None:
    best, gain = scratch_gain(_board(), ScratchGainPanel(kind="scratch_gain"), "val_acc")
    assert list(best.columns) == ["0", "all"] and best.loc["pretrained", "0"] == 0.80
    assert gain.loc["pretrained", "0"] == pytest.approx(0.30) and gain.loc["pretrained", "all"] == pytest.approx(0.40)
    assert gain.loc["scratch"].isna().all()


def test_pretrained_against_scratch_per_neck_and_head() -> None:
    panel = ScratchGainPanel(kind="scratch_gain", rows="neck", columns="head")
    best, gain = scratch_gain(_board(), panel, "val_acc")
    assert best.loc["gap", "linear"] == 0.80 and gain.loc["gap", "linear"] == pytest.approx(0.30)
    assert best.loc["gem", "linear"] == 0.70 and pd.isna(gain.loc["gem", "linear"])  # no scratch trial there
    html = scratch_gain_panel(_board(), panel, "val_acc")
    assert "0.800 (+0.300)" in html and "test_resnet" in html
    only_scratch = _board()[lambda b: b["weights"] == "scratch"]
    assert "no pretrained weights trial to compare with" in scratch_gain_panel(only_scratch, panel, "val_acc")
