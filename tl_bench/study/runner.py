"""``tl-bench run``: one Optuna study per (spec, dataset), topped up to its budget.

The budget counts finished trials (complete or pruned): re-running the same
command resumes where the study stopped and never repeats finished work.
``workers > 1`` starts that many ``tl-bench run`` processes on this machine
against the same storage; many hosts do the same by sharing storage URLs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from tl_bench.study.execute import TrialContext, grid_exhausted, run_one
from tl_bench.spec_optuna import make_pruner, make_sampler
from tl_bench.study.reconcile import reconcile
from tl_bench.study.space import SearchSpace
from tl_bench.study.storage import PARENT_RUN, make_storage, open_study, study_name
from tl_bench.tracking import Tracker

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PARENT_WAIT_S = 60


@dataclass
class RunOptions:
    n_trials: int | None = None  # finished trials per dataset study (None = the spec's budget)
    timeout_s: float | None = None  # wall clock per dataset study in this invocation
    workers: int = 1
    worker_index: int = 0  # seeds the sampler differently in each worker
    track: bool = True  # False switches MLflow off (benchmarks)
    summarize: bool = True  # write the study summary to the parent run at the end
    on_progress: Callable[[dict[str, Any]], None] | None = None
    on_study: Callable[[optuna.Study], None] | None = None  # called once the study is open


@dataclass
class DatasetOutcome:
    dataset: str
    study_name: str
    parent_run_id: str
    counts: dict[str, int] = field(default_factory=dict)
    best: dict[str, Any] | None = None


def count_states(study: optuna.Study) -> dict[str, int]:
    counts = {s.name: 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def _parent_run(study: optuna.Study, created: bool, tracker: Tracker, spec: Any, dataset_key: str) -> str:
    """The parent run id, created once per study however many workers start together."""
    if not tracker.enabled:
        return ""
    if created:
        run_id = tracker.find_parent_run(study.study_name) or tracker.create_parent_run(
            study=spec.name, dataset=dataset_key, optuna_study=study.study_name, description=spec.description or ""
        )
        study.set_user_attr(PARENT_RUN, run_id)
        return run_id
    deadline = time.monotonic() + PARENT_WAIT_S
    while True:
        run_id = optuna.load_study(study_name=study.study_name, storage=study._storage).user_attrs.get(PARENT_RUN)
        if run_id:
            tracker.reopen_parent_run(run_id)
            return run_id
        if time.monotonic() > deadline:  # the creator died before writing it: take over
            run_id = tracker.create_parent_run(study=spec.name, dataset=dataset_key, optuna_study=study.study_name)
            study.set_user_attr(PARENT_RUN, run_id)
            return run_id
        time.sleep(0.5)


def _budget_left(study: optuna.Study, n_trials: int | None) -> float:
    if n_trials is None:
        return float("inf")
    taken = len(study.get_trials(deepcopy=False, states=FINISHED + (TrialState.RUNNING,)))
    return n_trials - taken


def run_dataset(
    spec: Any,
    dataset: Any,
    options: RunOptions,
    *,
    train_fn: Callable[..., Any],
    resolve_weights: Callable[[str, str], str | None],
    stage_counts: dict[str, int],
    cache: Any = None,
    tracker: Tracker,
    fingerprint: str | None = None,
) -> DatasetOutcome:
    """Top one dataset's study up to its budget in this process, recording it with ``tracker``."""
    storage = make_storage(spec.storage_url)
    space = SearchSpace(spec, stage_counts)
    name = study_name(spec.name, dataset.key)
    study, created = open_study(
        storage,
        name,
        directions=list(spec.objective.directions),
        sampler=make_sampler(spec, grid_space=space.grid_space() if space.grid else None, seed_offset=options.worker_index),
        pruner=make_pruner(spec),
        space_digest=spec.space_digest(),
        source=str(spec.source_path),
    )
    if options.on_study is not None:
        options.on_study(study)
    parent = _parent_run(study, created, tracker, spec, dataset.key)
    if created:
        for baseline in spec.baselines:
            study.enqueue_trial(space.baseline_params(baseline), skip_if_exists=True)
    reconcile(study, tracker, all_runs=not created)  # a study created just now has no runs left behind
    n_trials = options.n_trials if options.n_trials is not None else spec.budget.n_trials
    timeout = options.timeout_s if options.timeout_s is not None else spec.budget.timeout_s
    ctx = TrialContext(
        study=study,
        space=space,
        spec_name=spec.name,
        dataset=dataset,
        base=spec.base_config(dataset),
        tracker=tracker,
        parent_run_id=parent,
        resolve_weights=resolve_weights,
        train_fn=train_fn,
        cost=spec.objective.cost,
        fingerprint=fingerprint,
        cache=cache,
        on_progress=options.on_progress or (lambda info: None),
    )
    start = time.monotonic()
    failures = 0
    max_failures = max(3, n_trials or 10)  # a study whose every trial fails must still end
    while True:
        # A worker that died elsewhere holds a RUNNING trial that counts against the budget: free it.
        reconcile(study, tracker, all_runs=False)
        if _budget_left(study, n_trials) <= 0 or failures >= max_failures or grid_exhausted(study):
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        if run_one(ctx) == TrialState.FAIL:
            failures += 1
    outcome = DatasetOutcome(dataset.key, name, parent, count_states(study))
    outcome.best = best_trial_info(study)
    return outcome


def best_trial_info(study: optuna.Study) -> dict[str, Any] | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.values[0], -t.number))
    return {"number": best.number, "val_acc": best.values[0], **best.user_attrs, "params": best.params}


def spawn_workers(argv: list[str], workers: int, *, tick: Callable[[], None] | None = None) -> int:
    """Run ``workers`` copies of a ``tl-bench run`` command line; returns the worst exit code."""
    procs = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for index in range(workers):
        # Index 0 is the parent that set the studies up; workers count from 1.
        cmd = [sys.executable, "-m", "tl_bench", *argv, "--workers", "1", "--worker-index", str(index + 1), "--quiet"]
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        while any(p.poll() is None for p in procs):
            if tick is not None:
                tick()
            time.sleep(1.0)
        codes = [p.returncode for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    return max(codes, key=abs)


__all__ = ["RunOptions", "DatasetOutcome", "run_dataset", "spawn_workers", "count_states", "best_trial_info"]
