"""Bring the Optuna storage and MLflow back in step after a worker died.

Run at the start of every ``tl-bench run`` (and by ``tl-bench doctor``):
trials left RUNNING by a dead worker become FAIL, and MLflow runs left
RUNNING for trials that have ended get the matching status. Finished trials
and their runs are never touched.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass, field

import optuna
from optuna.storages._heartbeat import fail_stale_trials
from optuna.trial import TrialState

from tl_bench.study.execute import ERROR_ATTR, HOST_ATTR, PID_ATTR, RUN_ATTR
from tl_bench.tracking import Tracker


@dataclass
class Repairs:
    failed_trials: list[int] = field(default_factory=list)  # RUNNING trials of dead workers, now FAIL
    closed_runs: list[str] = field(default_factory=list)  # MLflow runs left RUNNING, now ended

    def __bool__(self) -> bool:
        return bool(self.failed_trials or self.closed_runs)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not running a trial while it reconciles
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """RUNNING trials whose worker process on this host no longer exists."""
    host = socket.gethostname()
    out = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get(PID_ATTR)
        if trial.user_attrs.get(HOST_ATTR) == host and isinstance(pid, int) and not _process_alive(pid):
            out.append(trial)
    return out


def reconcile(study: optuna.Study, tracker: Tracker, *, repair: bool = True) -> Repairs:
    """Find (and with ``repair``, fix) trials and runs left behind by dead workers."""
    found = Repairs()
    storage = study._storage
    for trial in dead_trials(study):
        found.failed_trials.append(trial.number)
        if repair:
            pid, host = trial.user_attrs.get(PID_ATTR), trial.user_attrs.get(HOST_ATTR)
            storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, f"worker process {pid} on {host} stopped during the trial")
            try:
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker repaired it first
    if repair:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)  # heartbeat: workers on other hosts
    if not tracker.enabled:
        return found
    states = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAIL"}
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get(RUN_ATTR)
        state = states.get(trial.state.name)
        if not run_id or state is None:
            continue
        assert tracker.client is not None
        run = tracker.client.get_run(run_id)
        if run.info.status == "RUNNING":
            found.closed_runs.append(run_id)
            if repair:
                error = trial.user_attrs.get(ERROR_ATTR) or "worker stopped during the trial"
                tracker.end_run(run_id, state, error=error if state == "FAIL" else None)
    return found


__all__ = ["reconcile", "dead_trials", "Repairs"]
