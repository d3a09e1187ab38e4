"""Bring the Optuna storage and MLflow back in step after a worker died.

Run at the start of every ``tl-bench run`` and, for trials only, before each
trial (``tl-bench doctor`` does the full check): trials left RUNNING by a
dead worker become FAIL with the reason in
their ``error`` attribute, and MLflow runs left RUNNING for trials that have
ended get the matching status. Finished trials and their results are never
touched.

A worker is known dead when it ran on this host and its process is gone, or,
on any host, when its trial has had no heartbeat for ``GRACE_S`` seconds.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tl_bench.study.storage import (
    ERROR_ATTR,
    GRACE_S,
    HOST_ATTR,
    PID_ATTR,
    PIDNS_ATTR,
    fail_trial,
    optuna_study_id,
    stale_trials,
)
from tl_bench.study.workers import pid_namespace, process_alive
from tl_bench.tracking import KIND, OPTUNA_STUDY, OPTUNA_STUDY_ID, RUN_STATUS, STATE, TRIAL, Tracker

ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class Repairs:
    failed_trials: list[int] = field(default_factory=list)  # RUNNING trials of dead workers, now FAIL
    closed_runs: list[str] = field(default_factory=list)  # MLflow runs left RUNNING, now ended

    def __bool__(self) -> bool:
        return bool(self.failed_trials or self.closed_runs)


def ran_here(trial: FrozenTrial) -> bool:
    """Whether the worker that ran ``trial`` was on this host and in this pid namespace."""
    namespace = pid_namespace()
    return trial.user_attrs.get(HOST_ATTR) == socket.gethostname() and trial.user_attrs.get(PIDNS_ATTR, namespace) == namespace


def worker_gone(trial: FrozenTrial) -> bool:
    """Whether the worker that ran ``trial`` was on this host (and pid namespace) and its process is gone."""
    pid = trial.user_attrs.get(PID_ATTR)
    return ran_here(trial) and isinstance(pid, int) and not process_alive(pid)


def dead_trials(study: optuna.Study) -> list[FrozenTrial]:
    """RUNNING trials whose worker process on this host (and pid namespace) no longer exists."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if worker_gone(t)]


def abandoned_trials(study: optuna.Study, *, stale: bool = True) -> list[tuple[FrozenTrial, str]]:
    """RUNNING trials nobody works on any more, each with the reason it is known (``stale=False``:
    only those of dead processes on this host, without asking the storage for stale heartbeats)."""
    found: dict[int, tuple[FrozenTrial, str]] = {}
    for trial in dead_trials(study):
        pid, host = trial.user_attrs.get(PID_ATTR), trial.user_attrs.get(HOST_ATTR)
        found[trial.number] = (trial, f"worker process {pid} on {host} stopped during the trial")
    for trial in stale_trials(study) if stale else []:
        if trial.number not in found:
            pid, host = trial.user_attrs.get(PID_ATTR, "?"), trial.user_attrs.get(HOST_ATTR, "?")
            found[trial.number] = (trial, f"worker process {pid} on {host} sent no heartbeat for over {GRACE_S} s")
    return [found[n] for n in sorted(found)]


def run_state(trial: FrozenTrial) -> str:
    """The ``tlb.state`` an ended trial's run should carry."""
    return trial.state.name


def state_agrees(trial: FrozenTrial, run: Any) -> bool:
    """Whether an ended run records its ended trial's state (an interrupted trial is FAIL in Optuna, KILLED in MLflow)."""
    tag = run.data.tags.get(STATE)
    if trial.state == TrialState.FAIL and tag == "INTERRUPTED":
        return run.info.status == RUN_STATUS["INTERRUPTED"]
    return tag == trial.state.name and run.info.status == RUN_STATUS[trial.state.name]


def study_runs_filter(optuna_study: str, *, running_only: bool = False) -> str:
    text = f"tags.`{KIND}` = 'trial' and tags.`{OPTUNA_STUDY}` = '{optuna_study}'"
    return text + (" and attributes.status = 'RUNNING'" if running_only else "")


def of_study(run: Any, study_id: str) -> bool:
    """Whether a run recorded under the study's name is this study's (``optuna_study_id``): a run tagged
    with another study id is a deleted namesake's; an untagged (older) run is taken as the study's."""
    tag = run.data.tags.get(OPTUNA_STUDY_ID)
    return tag is None or tag == study_id


def trial_number(run: Any) -> int | None:
    try:
        return int(run.data.tags.get(TRIAL, ""))
    except ValueError:
        return None


def reconcile(
    study: optuna.Study, tracker: Tracker, *, repair: bool = True, all_runs: bool = True, stale: bool = True
) -> Repairs:
    """Find (and with ``repair``, fix) trials and runs left behind by dead workers.

    Cheap enough for every start-up: two queries for RUNNING trials, one for
    RUNNING runs of this study. With ``all_runs=False`` (before each trial)
    MLflow is only asked when a trial was just found abandoned; ``stale=False``
    skips the heartbeat query (a heartbeat goes stale in tens of seconds, so
    between trials it is asked at most once per heartbeat interval).
    """
    found = Repairs()
    for trial, reason in abandoned_trials(study, stale=stale):
        found.failed_trials.append(trial.number)
        if repair:
            fail_trial(study, trial, reason)
    if not tracker.enabled or not (all_runs or found.failed_trials):
        return found
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    study_id = optuna_study_id(study)
    for run in tracker.runs(study_runs_filter(study.study_name, running_only=True)):
        trial = trials.get(trial_number(run))  # type: ignore[arg-type]
        if trial is None or trial.state not in ENDED or not of_study(run, study_id):
            continue  # a live trial, or a run without a trial: `tl-bench doctor` reports those
        found.closed_runs.append(run.info.run_id)
        if repair:
            error = trial.user_attrs.get(ERROR_ATTR) or "worker stopped during the trial"
            tracker.end_run(run.info.run_id, run_state(trial), error=error if trial.state == TrialState.FAIL else None)
    return found


__all__ = [
    "Repairs",
    "abandoned_trials",
    "dead_trials",
    "of_study",
    "ran_here",
    "reconcile",
    "run_state",
    "state_agrees",
    "study_runs_filter",
    "trial_number",
    "worker_gone",
]
