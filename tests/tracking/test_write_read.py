"""The Tracker writes runs as the study layout says, and reads them back through every page."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

import tl_bench.tracking.read as read
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.tracking import (
    DUPLICATE_OF,
    PARENT_RUN_ID,
    Tracker,
    config_params,
    experiment_exists,
    read_runs,
    trial_tags,
)

CONFIG = TrialConfig(dataset="digits", backbone="test_resnet")


def test_runs_are_read_back_through_every_page(mlflow_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = Tracker(mlflow_db, "demo")
    parent = tracker.create_parent_run(study="demo", dataset="digits", optuna_study="demo/digits")
    ids = set()
    for number in range(5):
        run_id = tracker.start_trial(parent, CONFIG, study="demo", dataset="digits", trial_number=number)
        tracker.finish_trial(run_id, "COMPLETE", result=TrialResult(val_acc=0.5, test_acc=0.4))
        ids.add(run_id)
    monkeypatch.setattr(read, "PAGE_SIZE", 2)
    assert {r.info.run_id for r in tracker.runs(f"tags.`{PARENT_RUN_ID}` = '{parent}'")} == ids
    frame = read_runs(mlflow_db, study="demo")
    assert set(frame["run_id"]) == ids and set(frame["parent_run_id"]) == {parent}
    assert (frame["state"] == "COMPLETE").all() and (frame["metrics.val_acc"] == 0.5).all()
    assert tracker.find_parent_run("demo/digits") == parent and tracker.find_parent_run("demo/other") is None
    assert experiment_exists(mlflow_db, "demo") and not experiment_exists(mlflow_db, "other")


def test_an_ended_run_is_recorded_whole(mlflow_db: str) -> None:
    tracker = Tracker(mlflow_db, "demo")
    config = TrialConfig(dataset="digits", backbone="test_vit")
    tags = trial_tags(study="demo", dataset="digits", trial_number=3, state="PRUNED")
    metrics = [("val_acc", 0.25, 0)] + [("epoch_val_acc", 0.1 * step, step) for step in range(1, 4)]
    run_id = tracker.record_run(run_name="t3", tags=tags, params=config_params(config), metrics=metrics,
                                state="PRUNED", start_ms=1_000, end_ms=2_000)
    run = MlflowClient(mlflow_db).get_run(run_id)
    assert (run.info.status, run.info.start_time, run.info.end_time) == ("KILLED", 1_000, 2_000)
    assert run.data.tags["tlb.trial"] == "3" and run.data.tags["tlb.kind"] == "trial"
    assert run.data.params == config_params(config) and run.data.metrics["val_acc"] == 0.25
    history = MlflowClient(mlflow_db).get_metric_history(run_id, "epoch_val_acc")
    assert [m.step for m in history] == [1, 2, 3]


def test_ending_and_tagging_runs(mlflow_db: str) -> None:
    tracker = Tracker(mlflow_db, "demo")
    parent = tracker.create_parent_run(study="demo", dataset="digits", optuna_study="demo/digits")
    run_id = tracker.start_trial(parent, CONFIG, study="demo", dataset="digits", trial_number=0)
    assert tracker.run_status(run_id) == "RUNNING"
    tracker.end_run(run_id, "FAIL", error="x" * 6000, tags={DUPLICATE_OF: "other"})
    tracker.set_tags(run_id, {"tlb.note": "kept"})
    tracker.close_parent(parent, "KILLED")
    run = MlflowClient(mlflow_db).get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["tlb.state"] == "FAIL"
    assert len(run.data.tags["tlb.error"]) == 5000 and run.data.tags[DUPLICATE_OF] == "other"
    assert run.data.tags["tlb.note"] == "kept" and tracker.run_status(parent) == "KILLED"


def test_a_disabled_tracker_writes_and_reads_nothing() -> None:
    tracker = Tracker(None, "demo", enabled=False)
    assert tracker.create_parent_run(study="demo", dataset="d", optuna_study="demo/d") == ""
    assert list(tracker.runs()) == [] and tracker.find_parent_run("demo/d") is None
