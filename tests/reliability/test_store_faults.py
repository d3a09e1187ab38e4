"""A store on a bad day: locked by another process, read-only, on a full disk; workers racing to record
one dataset. Each with real processes, real locks and real mounts; nothing finished is ever lost.

The command runs in this process (``fault_support.cli``: the same entry point, imports paid once) while
the faults come from outside: a lock holder process, a mount, a file that fills the disk.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from fault_support import cli, fill_disk, hold_lock, read_only, small_disk, take_lock
from reliability_support import (
    Processes,
    load_trials,
    long_trial_spec,
    run_record,
    running_with_run,
    spec_data,
    sqlite_url,
    store_snapshot,
    trial_record,
    trial_runs,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.slow


def _in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``target`` beside the command; what it raises is kept and re-raised by the test."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            errors.append(err)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread, errors


def _one_line(done: Any, *words: str) -> str:
    assert done.code == 2, done.err[-3000:]
    lines = [line for line in done.lines if not line.startswith(("[I ", "20"))]  # Optuna's and MLflow's INFO lines
    assert len(lines) == 1 and lines[0].startswith("error: "), done.err[-3000:]
    assert "Traceback" not in done.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_lock_held_by_another_process_costs_a_wait_not_the_study(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    processes: Processes,
) -> None:
    """Locks longer than MLflow's own 20 s: at start (run and doctor), then during a trial (both stores)."""
    monkeypatch.chdir(tmp_path)
    # Fine-tuned (no feature cache) and long enough that the watcher finds trial 0 mid-way on a fast machine.
    space = {"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"],
             "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}}
    # A pruner that never prunes two trials: with one, every epoch is reported to Optuna as it ends.
    write_spec(tmp_path, spec_data(space=space, fixed={"epochs": 60, "batch_size": 50},
                                   pruner={"name": "median", "n_startup_trials": 10}, budget={"n_trials": 2}))
    storage, runs = sqlite_url(tmp_path, "optuna.db"), tmp_path / "runs"
    taken: dict[str, float] = {}
    # Started ahead, so that each lock is taken within milliseconds of the moment chosen.
    mlflow_lock, optuna_lock = hold_lock(runs / "mlflow.db", 16, armed=True), hold_lock(runs / "optuna.db", 12, armed=True)

    def in_trial_0() -> None:
        # Its first epoch is reported: the next reports wait for the Optuna lock, its results for MLflow's.
        wait_for(lambda: load_trials(storage) and load_trials(storage)[0].intermediate_values, timeout=300,
                 what="trial 0's first epoch")
        take_lock(mlflow_lock)
        take_lock(optuna_lock)
        taken["trial"] = time.time()

    start_lock = hold_lock(runs / "mlflow.db", 25)
    taken["start"] = time.time()
    doctor = processes.start(["doctor", "study.yaml"], cwd=tmp_path)  # reads wait too
    watcher, errors = _in_thread(in_trial_0)
    done = cli(["run", "study.yaml", "--quiet"], capfd)
    watcher.join(timeout=120)
    for holder in (start_lock, mlflow_lock, optuna_lock):
        holder.wait(timeout=60)
    assert not errors, errors
    assert done.code == 0, done.err[-3000:]
    assert "locked" not in done.err and "Traceback" not in done.err
    doctor_out, doctor_err = doctor.communicate(timeout=300)
    assert doctor.returncode == 0 and "locked" not in doctor_err, doctor_err[-2000:]

    trials = load_trials(storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    by_trial = {int(r.data.tags["tlb.trial"]): r for r in trial_runs(mlflow_db)}
    assert all(r.info.status == "FINISHED" for r in by_trial.values()) and set(by_trial) == {0, 1}
    # The waits happened: the first write came after the start lock went (over MLflow's own 20 s); trial 0
    # stalled on the Optuna lock (its six epochs take a few seconds otherwise) and its results waited for
    # the MLflow lock.
    assert min(r.info.start_time for r in by_trial.values()) / 1000 >= taken["start"] + 25 - 1
    assert trials[0].datetime_complete.timestamp() - trials[0].datetime_start.timestamp() >= 12 - 1
    assert by_trial[0].info.end_time / 1000 >= taken["trial"] + 16 - 1
    assert cli(["doctor", "study.yaml"], capfd).code == 0  # both stores agree


def test_a_read_only_runs_folder_is_one_line_and_the_next_run_goes_on(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_spec(tmp_path, spec_data(budget={"n_trials": 1}))
    assert cli(["run", "study.yaml", "--quiet"], capfd).code == 0
    storage = sqlite_url(tmp_path, "optuna.db")
    finished = [trial_record(t) for t in load_trials(storage)]
    before = store_snapshot(tmp_path)
    with read_only(tmp_path / "runs"):
        stopped = cli(["run", "study.yaml", "--quiet", "--n-trials", "2"], capfd)
        _one_line(stopped, "cannot be written (read-only or no permission)", "make its folder writable")
        report = cli(["doctor", "study.yaml"], capfd)  # a report only reads: a read-only store is fine
        assert report.code == 0 and "consistent" in report.out, report.err
        board = cli(["leaderboard", "--spec", "study.yaml"], capfd)
        assert board.code == 0 and "test_resnet" in board.out
    assert store_snapshot(tmp_path) == before
    assert cli(["run", "study.yaml", "--quiet", "--n-trials", "2"], capfd).code == 0
    trials = load_trials(storage)
    assert [trial_record(t) for t in trials[:1]] == finished and len(trials) == 2


def test_a_full_disk_at_start_mid_trial_and_in_doctor_repair_is_one_line_and_nothing_is_lost(
    tmp_path: Path, mlflow_template: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stores on a 48 MB tmpfs that a file fills up: at start, in the middle of trial 1, during a repair."""
    import shutil

    with small_disk(tmp_path / "disk", 48) as disk:
        monkeypatch.chdir(disk)
        (disk / "runs").mkdir()
        shutil.copyfile(mlflow_template, disk / "runs" / "mlflow.db")
        long_trial_spec(disk)
        storage, tracking = sqlite_url(disk, "optuna.db"), f"sqlite:///{disk / 'runs' / 'mlflow.db'}"

        filler = fill_disk(disk)  # at start: nothing can be recorded, and nothing is
        before = store_snapshot(disk)
        _one_line(cli(["run", "study.yaml", "--quiet"], capfd), "the disk is full", "free space")
        filler.unlink()
        assert store_snapshot(disk) == before

        def fill_in_trial_1() -> None:
            wait_for(lambda: running_with_run(storage, 1), timeout=300, what="trial 1 RUNNING with its run")
            fill_disk(disk)

        watcher, errors = _in_thread(fill_in_trial_1)
        _one_line(cli(["run", "study.yaml", "--quiet"], capfd), "the disk is full", "free space")
        watcher.join(timeout=60)
        assert not errors, errors
        trial_0 = trial_record(load_trials(storage)[0])
        run_0 = run_record(next(r for r in trial_runs(tracking) if r.data.tags["tlb.trial"] == "0"))
        assert trial_0[1] == TrialState.COMPLETE and run_0[0] == "FINISHED"

        # The repair of trial 1 (left RUNNING by a process that is gone) cannot be written either.
        findings = cli(["doctor", "study.yaml", "--json"], capfd)
        kinds = {f["kind"] for f in json.loads(findings.out)["findings"]}
        assert findings.code == 1 and kinds & {"abandoned_trial", "run_left_running"}, findings.out
        before = store_snapshot(disk)
        _one_line(cli(["doctor", "study.yaml", "--repair"], capfd), "the disk is full", "free space")
        assert store_snapshot(disk) == before
        (disk / "filler.bin").unlink()

        done = cli(["run", "study.yaml", "--quiet"], capfd)  # repairs trial 1, then tops the budget up
        assert done.code == 0, done.err[-3000:]
        trials = load_trials(storage)
        assert trial_record(trials[0]) == trial_0 and trials[1].state == TrialState.FAIL
        assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
        runs = {r.data.tags["tlb.trial"]: r for r in trial_runs(tracking)}
        assert run_record(runs["0"]) == run_0 and runs["1"].info.status == "FAILED"
        assert cli(["doctor", "study.yaml"], capfd).code == 0


def test_workers_logging_one_new_dataset_at_once_both_record_their_trial(tmp_path: Path, mlflow_db: str) -> None:
    """Two writers, released together, each link a trial run to the same dataset new to the store."""
    from tl_bench.config import TrialConfig
    from tl_bench.tracking import Tracker

    config = TrialConfig(dataset="digits", backbone="test_resnet", img_size=16)
    trackers = [Tracker(mlflow_db, "race"), Tracker(mlflow_db, "race")]
    for round_ in range(12):
        gate, failures, made = threading.Barrier(2), [], []

        def start(tracker: Tracker, number: int) -> None:
            gate.wait()
            try:
                made.append(tracker.start_trial("", config, study="race", dataset="digits", trial_number=number,
                                                fingerprint=f"{round_:04d}" + "f" * 60))
            except Exception as err:  # noqa: BLE001 - the race this test is about
                failures.append(err)

        threads = [threading.Thread(target=start, args=(t, 2 * round_ + i)) for i, t in enumerate(trackers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
        assert len(made) == 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_db)
    runs = client.search_runs([trackers[0].experiment_id], max_results=100)
    assert len(runs) == 24 and all(len(r.inputs.dataset_inputs) == 1 for r in runs)
    assert len({r.inputs.dataset_inputs[0].dataset.digest for r in runs}) == 12  # one dataset per round, stored once
