"""``tl-bench doctor``: stores made inconsistent by real means are reported without a write, repaired
with ``--repair``, and found consistent afterwards; finished results are never changed.

The inconsistencies: a finished trial's run set back to RUNNING and a second RUNNING run claiming a
finished trial (both through the MLflow client), trials run with tracking off (no runs), a run naming
a trial the study does not have, and a worker process that took a trial and was killed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from reliability_support import load_trials, spec_data, store_snapshot, tlb, trial_record, trial_runs, write_spec
from tl_bench.cli import app
from tl_bench.doctor import diagnose
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec

pytestmark = pytest.mark.slow

# A worker that takes a trial, opens its MLflow run as tl-bench does, and is killed mid-trial.
DYING_WORKER = """
import os, signal, socket, sys
import optuna
from mlflow.tracking import MlflowClient
storage, tracking_uri, study_name, experiment, parent = sys.argv[1:6]
study = optuna.load_study(study_name=study_name, storage=storage)
trial = study.ask()
trial.set_user_attr("host", socket.gethostname())
trial.set_user_attr("pid", os.getpid())
client = MlflowClient(tracking_uri)
tags = {"tlb.kind": "trial", "tlb.study": experiment, "tlb.dataset": "digits", "tlb.optuna_study": study_name,
        "tlb.trial": str(trial.number), "tlb.state": "RUNNING", "mlflow.parentRunId": parent}
run = client.create_run(client.get_experiment_by_name(experiment).experiment_id, tags=tags)
trial.set_user_attr("mlflow_run_id", run.info.run_id)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _trial_run_tags(study: str, number: int, parent: str) -> dict[str, str]:
    return {"tlb.kind": "trial", "tlb.study": "rel", "tlb.dataset": "digits", "tlb.optuna_study": study,
            "tlb.trial": str(number), "tlb.state": "RUNNING", "mlflow.parentRunId": parent}


def test_doctor_reports_then_repairs_without_touching_finished_results(tmp_path: Path, mlflow_db: str) -> None:
    spec = load_spec(write_spec(tmp_path, spec_data(budget={"n_trials": 2})))
    name = spec.study_name("digits")
    run_spec(spec, RunOptions(n_trials=2), quiet=True)  # trials 0 and 1, tracked
    run_spec(spec, RunOptions(n_trials=3, track=False, summarize=False), quiet=True)  # trial 2: no run
    client = MlflowClient(mlflow_db)
    trials = load_trials(spec.storage_url)
    parent = optuna.load_study(study_name=name, storage=spec.storage_url).user_attrs["mlflow_parent_run_id"]
    own0, own1 = trials[0].user_attrs["mlflow_run_id"], trials[1].user_attrs["mlflow_run_id"]
    finished_runs = {r.info.run_id: r for r in trial_runs(mlflow_db)}
    finished_trials = [trial_record(t) for t in trials]

    client.set_terminated(own0, status="KILLED")  # trial 0's run claims another ending than its trial
    client.update_run(own1, status="RUNNING")  # trial 1's run claims to be running again
    duplicate = client.create_run(client.get_experiment_by_name("rel").experiment_id,
                                  tags=_trial_run_tags(name, 1, parent)).info.run_id
    orphan = client.create_run(client.get_experiment_by_name("rel").experiment_id,
                               tags=_trial_run_tags(name, 99, parent)).info.run_id
    client.set_terminated(orphan, status="FINISHED")
    dying = subprocess.run([sys.executable, "-c", DYING_WORKER, spec.storage_url, mlflow_db, name, "rel", parent],
                           capture_output=True, text=True, timeout=120)
    assert dying.returncode == -9, dying.stderr[-2000:]
    abandoned = load_trials(spec.storage_url)[3]
    assert abandoned.state == TrialState.RUNNING

    # Report only (the API behind `tl-bench doctor SPEC`): every inconsistency found, nothing written.
    before = store_snapshot(tmp_path)
    report = diagnose(spec)
    assert report.left == report.findings and not report.to_dict()["consistent"]
    found = {(f.kind, f.trial, f.run_id) for f in report.findings}
    assert ("state_mismatch", 0, own0) in found
    assert ("run_left_running", 1, own1) in found
    assert ("duplicate_run", 1, duplicate) in found
    assert ("trial_without_run", 2, None) in found
    assert ("run_without_trial", 99, orphan) in found
    assert ("abandoned_trial", 3, abandoned.user_attrs["mlflow_run_id"]) in found
    assert len(found) == 6
    assert store_snapshot(tmp_path) == before and client.get_run(own1).info.status == "RUNNING"

    repaired = tlb(["doctor", "study.yaml", "--repair", "--json"], cwd=tmp_path)
    assert repaired.returncode == 0, repaired.stderr + repaired.stdout
    assert all(f["repaired"] for f in json.loads(repaired.stdout)["findings"])

    trials = load_trials(spec.storage_url)
    assert [trial_record(t) for t in trials[:3]] == finished_trials  # Optuna's finished trials untouched
    assert trials[3].state == TrialState.FAIL and "stopped during the trial" in trials[3].user_attrs["error"]
    runs = {r.info.run_id: r for r in trial_runs(mlflow_db)}
    for own, kind in ((own0, "state_mismatch"), (own1, "run_left_running")):
        run, was = runs[own], finished_runs[own]
        assert run.info.status == "FINISHED" and run.data.tags["tlb.state"] == "COMPLETE" and "tlb.error" not in run.data.tags
        assert run.data.tags["tlb.repair"] == kind
        assert (run.data.params, run.data.metrics) == (was.data.params, was.data.metrics)  # results untouched
    assert runs[duplicate].info.status == "FAILED" and runs[duplicate].data.tags["tlb.duplicate_of"] == own1
    assert runs[orphan].info.status == "FINISHED" and "no trial 99" in runs[orphan].data.tags["tlb.orphan"]
    killed = runs[abandoned.user_attrs["mlflow_run_id"]]
    assert killed.info.status == "FAILED" and "stopped during the trial" in killed.data.tags["tlb.error"]

    # The run trial 2 never had, written from the Optuna trial: full params, its value, its times.
    made = [r for r in runs.values() if r.data.tags.get("tlb.trial") == "2"]
    assert len(made) == 1 and made[0].data.tags["tlb.repair"] == "trial_without_run"
    assert made[0].info.status == "FINISHED" and made[0].data.tags["mlflow.parentRunId"] == parent
    assert made[0].data.metrics["val_acc"] == pytest.approx(trials[2].values[0])
    for param in ("backbone", "weights", "freeze_depth", "neck", "head", "lr", "epochs", "batch_size", "dataset"):
        assert param in made[0].data.params
    assert float(made[0].data.params["lr"]) == pytest.approx(trials[2].params["lr"])
    assert made[0].info.start_time == int(trials[2].datetime_start.timestamp() * 1000)

    again = CliRunner().invoke(app, ["doctor", str(tmp_path / "study.yaml")])  # the table form, in-process
    assert again.exit_code == 0 and "consistent: 1 studies, 4 trials, 6 trial runs checked" in again.stdout, again.stdout


def test_doctor_writes_nothing_where_nothing_was_recorded(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    report = diagnose(spec)
    assert (report.findings, report.studies) == ([], []) and not (tmp_path / "runs").exists()
