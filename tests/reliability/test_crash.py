"""A worker killed, interrupted or terminated in the middle of a trial: both stores tell the truth afterwards.

Trial 0 takes one epoch, trial 1 hundreds; each command test stops ``tl-bench run``
while trial 1 is RUNNING with its MLflow run, then checks what the stores hold.
A worker lost on another host is found by its heartbeat instead of its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from reliability_support import (
    Processes,
    load_trials,
    long_trial_spec,
    run_record,
    running_with_run,
    sqlite_url,
    tlb,
    trial_record,
    trial_runs,
    wait_for,
)
from tl_bench.doctor import diagnose
from tl_bench.spec import load_spec
from tl_bench.study.reconcile import reconcile
from tl_bench.study.storage import make_storage
from tl_bench.tracking import Tracker


def _start_and_catch_trial_1(folder: Path, processes: Processes):  # type: ignore[no-untyped-def]
    spec = long_trial_spec(folder)
    proc = processes.start(["run", spec.name, "--quiet"], cwd=folder)
    storage = sqlite_url(folder, "optuna.db")
    wait_for(lambda: running_with_run(storage, 1), timeout=180, what="trial 1 RUNNING with its run", proc=proc)
    return spec, proc, storage


@pytest.mark.slow
def test_sigkill_mid_trial_then_restart_fails_the_trial_and_completes_the_budget(
    tmp_path: Path, mlflow_db: str, processes: Processes
) -> None:
    spec, proc, storage = _start_and_catch_trial_1(tmp_path, processes)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # A killed process writes nothing more: what the stores hold now is what a restart must keep.
    finished_before = {t.number: trial_record(t) for t in load_trials(storage) if t.state == TrialState.COMPLETE}
    runs_before = {r.data.tags["tlb.trial"]: run_record(r) for r in trial_runs(mlflow_db) if r.info.status == "FINISHED"}
    killed_run = load_trials(storage)[1].user_attrs["mlflow_run_id"]
    assert list(finished_before) == [0] and list(runs_before) == ["0"]
    assert next(r for r in trial_runs(mlflow_db) if r.info.run_id == killed_run).info.status == "RUNNING"

    # The dead worker left a lie in both stores: doctor sees it, and without --repair changes nothing.
    report = diagnose(load_spec(spec))
    assert [(f.kind, f.trial, f.run_id) for f in report.findings] == [("abandoned_trial", 1, killed_run)]
    assert next(t for t in load_trials(storage) if t.number == 1).state == TrialState.RUNNING

    restart = tlb(["run", spec.name, "--quiet"], cwd=tmp_path)
    assert restart.returncode == 0, restart.stderr[-3000:]
    trials = {t.number: t for t in load_trials(storage)}
    assert trials[1].state == TrialState.FAIL and "stopped during the trial" in trials[1].user_attrs["error"]
    assert trials[0].state == TrialState.COMPLETE and trial_record(trials[0]) == finished_before[0]
    assert [t.state for t in trials.values()].count(TrialState.COMPLETE) == 2  # the budget, completed
    runs = {r.info.run_id: r for r in trial_runs(mlflow_db)}
    assert runs[killed_run].info.status == "FAILED" and "stopped during the trial" in runs[killed_run].data.tags["tlb.error"]
    assert run_record(next(r for r in runs.values() if r.data.tags["tlb.trial"] == "0")) == runs_before["0"]
    assert sorted(r.data.tags["tlb.trial"] for r in runs.values()) == [str(n) for n in sorted(trials)]  # one run each
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "reason"),
    [(signal.SIGINT, 130, "interrupted by Ctrl-C"), (signal.SIGTERM, 143, "interrupted by SIGTERM")],
    ids=["SIGINT", "SIGTERM"],
)
def test_interrupt_mid_trial_records_it_and_exits_promptly(
    tmp_path: Path, mlflow_db: str, processes: Processes, sig: signal.Signals, code: int, reason: str
) -> None:
    spec, proc, storage = _start_and_catch_trial_1(tmp_path, processes)
    # Read while the worker trains: a busy store may refuse a read now and then.
    finished_before = wait_for(lambda: [trial_record(t) for t in load_trials(storage) if t.state == TrialState.COMPLETE],
                               timeout=60, what="trial 0 read back")
    runs_before = wait_for(lambda: {r.info.run_id: run_record(r) for r in trial_runs(mlflow_db) if r.info.status == "FINISHED"},
                           timeout=60, what="run 0 read back")
    sent = time.monotonic()
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    took = time.monotonic() - sent
    print(f"tl-bench run exited {took:.2f} s after {sig.name}")
    assert proc.returncode == code and took < 20, (proc.returncode, took)
    assert "interrupted" in proc.stderr.read()  # type: ignore[union-attr]

    trials = load_trials(storage)
    # Trial 2 is the enqueued third baseline: still waiting, nothing else was started.
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert [trial_record(t) for t in trials if t.state == TrialState.COMPLETE] == finished_before
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["error"] == reason
    runs = {r.info.run_id: r for r in trial_runs(mlflow_db)}
    stopped = runs[trials[1].user_attrs["mlflow_run_id"]]
    assert stopped.info.status == "KILLED" and stopped.data.tags["tlb.state"] == "INTERRUPTED"
    assert stopped.data.tags["tlb.error"] == reason
    assert {k: run_record(runs[k]) for k in runs_before} == runs_before and len(runs) == 2
    # No trial runs any more: the study's parent run is closed as interrupted on the way out, not left RUNNING.
    parent = mlflow.MlflowClient(mlflow_db).get_run(stopped.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED" and parent.data.tags["tlb.state"] == "INTERRUPTED"


# A worker on another host: it takes a trial, sends one heartbeat and dies (the machine went away).
REMOTE_WORKER = """
import os, signal, sys
import optuna
from tl_bench.study.storage import make_storage
study = optuna.load_study(study_name="remote", storage=make_storage(sys.argv[1]))
trial = study.ask()
trial.set_user_attr("host", "another-host")
trial.set_user_attr("pid", os.getpid())
study._storage.record_heartbeat(trial._trial_id)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_lost_on_another_host_is_failed_once_its_heartbeat_is_stale(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="remote", storage=make_storage(url))
    died = subprocess.run([sys.executable, "-c", REMOTE_WORKER, url], capture_output=True, text=True, timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    off = Tracker(None, "remote", enabled=False)

    # Its pid means nothing here and its heartbeat is fresh: it may be alive, so it is left alone.
    study = optuna.load_study(study_name="remote", storage=make_storage(url))
    assert not reconcile(study, off) and study.trials[0].state == TrialState.RUNNING

    # Seen by a storage whose grace period has passed, the silent trial is failed with the reason.
    time.sleep(2.5)
    strict = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.load_study(study_name="remote", storage=strict)
    assert reconcile(study, off).failed_trials == [0]
    trial = optuna.load_study(study_name="remote", storage=url).trials[0]
    assert trial.state == TrialState.FAIL and "on another-host sent no heartbeat" in trial.user_attrs["error"]
