"""``DatasetStudy``: one Optuna study of one spec and dataset, with its MLflow parent run, search space,
model keeper and budget, as Optuna's ``Study`` owns its storage, sampler and pruner.

``open`` creates or loads the study (exactly one process across every worker
and host creates it), ``prepare`` sets a created study up (its data record,
screening scores, baselines, warm start, start trials), ``top_up`` runs
trials until the ``Budget``, the time limit or the grid ends, ``run_trial``
runs one (``trial.run_trial``: ask, train, then one classified end written to
MLflow, Optuna and the keeper in that order), and ``end`` summarises the
study, hands it to the caller's ``on_summary``, registers the champion and
closes the parent run. ``RunEnv`` is what every dataset study of one process
shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from tl_bench.config import TrialResult
from tl_bench.screen import Candidate, kept
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.study.budget import Budget
from tl_bench.study.ending import claim_end, summarise
from tl_bench.study.interrupts import during
from tl_bench.study.keep import ModelKeeper, keeper_for
from tl_bench.study.options import DatasetOutcome, SummaryCallback
from tl_bench.study.reconcile import ENDED, reconcile
from tl_bench.study.samplers import grid_exhausted, make_pruner, make_sampler, sampler_seed, sampler_stream
from tl_bench.study.screen import record_screen
from tl_bench.study.preflight import parent_run
from tl_bench.study.space import SearchSpace
from tl_bench.study.start import candidate_starts
from tl_bench.study.storage import (
    HEARTBEAT_S,
    adopt_identity,
    identity_change_note,
    make_storage,
    open_study,
)
from tl_bench.study.summary import count_states, failure_reasons
from tl_bench.study.trial import run_trial
from tl_bench.study.warm_start import record_data, warm_start
from tl_bench.tracking import IDENTITY_CHANGED, START, WARM_START, Tracker
from tl_bench.tracking.names import RUN_STATUS, STATE
from tl_bench.train import FeatureCache

RECONCILE_S = 1.0  # between trials, dead workers are looked for at most this often
MAX_FAILURES = 10  # failed trials that end a call of a study without a trial limit
Progress = Callable[[dict[str, Any]], None]


@dataclass
class RunEnv:
    """What every dataset study of one process shares: the record, the checkpoints, the trainer."""

    spec: StudySpec
    tracker: Tracker
    checkpoint_for: Callable[[str, str], str | None]  # (backbone, weights label) -> checkpoint file
    stage_counts: dict[str, int]  # backbone -> its stage count
    train_fn: Callable[..., TrialResult]
    fingerprints: dict[str, str] = field(default_factory=dict)  # dataset key -> data fingerprint
    screened: dict[str, list[Candidate]] = field(default_factory=dict)  # dataset key -> ranked candidates
    cache: FeatureCache | None = None
    continue_changed: bool = False  # a stored study that now measures something else goes on, the change recorded


class DatasetStudy:
    """One Optuna study of one spec and dataset; see the module docstring."""

    def __init__(self, env: RunEnv, dataset: DatasetSpec, study: optuna.Study, *, created: bool,
                 storage: optuna.storages.BaseStorage, space: SearchSpace, parent_run_id: str,
                 candidates: list[str] | None, sampler_seed: int | None = None) -> None:
        self.env, self.dataset, self.study, self.created, self.storage = env, dataset, study, created, storage
        self.sampler_seed = sampler_seed  # of this process's sampler, recorded on each trial it proposes
        self.space, self.parent_run_id, self.candidates = space, parent_run_id, candidates
        spec = env.spec
        self.keeper: ModelKeeper | None = keeper_for(spec, study, env.tracker, dataset.key)
        self.base = spec.base_config(dataset)  # the dataset's fields and the spec's fixed values
        self.metrics = list(spec.objective.metrics)  # the TrialResult fields that are Optuna's values

    @classmethod
    def open(cls, env: RunEnv, dataset: DatasetSpec, *, worker_index: int = 0) -> DatasetStudy:
        """Create the study (this process then sets it up with ``prepare``) or load it, and its parent run.

        With screening, the search keeps the spec's ``screen.keep`` best candidates."""
        spec = env.spec
        screened = env.screened.get(dataset.key)
        keep = spec.screen.keep if spec.screen is not None else None
        candidates = [c.key for c in kept(screened, keep)[0]] if screened else None
        space = SearchSpace(spec, env.stage_counts, candidates=candidates)
        storage = make_storage(spec.storage_url)
        identity = spec.identity(dataset, env.fingerprints.get(dataset.key))
        study, created = open_study(
            storage,
            spec.study_name(dataset),
            directions=list(spec.objective.directions),
            metric_names=list(spec.objective.metrics),
            sampler=make_sampler(spec, grid_space=space.grid_space() if space.grid else None),
            pruner=make_pruner(spec),
            space_digest=spec.space_digest(),
            source=str(spec.source_path),
            identity=identity,
            continue_changed=env.continue_changed,
        )
        # A study another process created or ran before: a sampler stream of this process's own.
        stream = sampler_stream(created=created, trials_before=len(study.get_trials(deepcopy=False)),
                                worker_index=worker_index)
        if stream:
            study.sampler = make_sampler(spec, grid_space=space.grid_space() if space.grid else None,
                                         seed_offset=stream)
        changes = [] if created else adopt_identity(study, space_digest=spec.space_digest(), identity=identity)
        parent = parent_run(study, created, env.tracker, spec, dataset)
        if changes and env.tracker.enabled and parent:
            env.tracker.set_tags(parent, {IDENTITY_CHANGED: identity_change_note(study)})
        return cls(env, dataset, study, created=created, storage=storage, space=space, parent_run_id=parent,
                   candidates=candidates, sampler_seed=sampler_seed(spec, stream))

    @property
    def spec(self) -> StudySpec:
        return self.env.spec

    @property
    def tracker(self) -> Tracker:
        return self.env.tracker

    @property
    def fingerprint(self) -> str | None:
        return self.env.fingerprints.get(self.dataset.key)

    def prepare(self) -> None:
        """Set a study created by this process up: what it searches on, screening's scores, baselines, warm
        start and start trials; then repair what dead workers left behind. Nothing to set up otherwise."""
        spec, tracker, study = self.spec, self.tracker, self.study
        if self.created:
            record_data(study, self.dataset.data_settings)
            screened = self.env.screened.get(self.dataset.key)
            if screened:
                record_screen(study, tracker, spec, self.dataset, self.parent_run_id, screened)
            for baseline in spec.baselines:
                if self.space.offers(baseline):  # a baseline of a candidate that screening dropped does not run
                    study.enqueue_trial(self.space.baseline_params(baseline), skip_if_exists=True)
            if spec.warm_start is not None:
                notes = warm_start(study, self.storage, spec, self.space, self.dataset.data_settings)
                self._tag({WARM_START: "; ".join(notes) or "no source study"})
            if spec.start == "candidates":
                starts = candidate_starts(self.space, self.candidates)
                for params in starts:
                    study.enqueue_trial(params, skip_if_exists=True)
                self._tag({START: f"candidates: {len(starts)} standard fine-tune(s) first"})
        self.repair(all_runs=not self.created)  # a study created just now has no runs left behind

    def repair(self, *, all_runs: bool) -> None:
        """End what dead workers left behind (their trials, and with ``all_runs`` every run out of step)."""
        reconcile(self.study, self.tracker, all_runs=all_runs)

    def _tag(self, tags: dict[str, str]) -> None:
        if self.tracker.enabled and self.parent_run_id:
            self.tracker.set_tags(self.parent_run_id, tags)

    def top_up(self, budget: Budget, *, timeout_s: float | None = None,
               on_progress: Progress | None = None) -> DatasetOutcome:
        """Run trials in this process until ``budget`` is spent, ``timeout_s`` passes, the grid is done or
        too many trials of this call failed; returns the study's outcome.

        A failed trial does not use the budget up (another is tried), but as many failed trials as the budget
        had trials left when the call began end the call (``MAX_FAILURES`` without a trial limit): a budget of
        N trials never starts more than N when every one fails."""
        start = time.monotonic()
        checked = stale_checked = start  # ``prepare`` asked for dead workers and stale heartbeats just now
        failures = 0
        left = budget.left(self.study)
        max_failures = MAX_FAILURES if left == float("inf") else max(1, int(left))
        while True:
            # A worker that died elsewhere holds a RUNNING trial that counts against the budget: free it. Asked
            # at most once a second (stale heartbeats once per interval), and always before the budget ends it.
            now = time.monotonic()
            spent = budget.spent(self.study)
            if spent or now - checked >= RECONCILE_S:
                stale = now - stale_checked >= HEARTBEAT_S
                if reconcile(self.study, self.tracker, all_runs=False, stale=stale) and spent:
                    spent = budget.spent(self.study)
                checked, stale_checked = now, now if stale else stale_checked
            if spent or failures >= max_failures or grid_exhausted(self.study):
                break
            if timeout_s is not None and time.monotonic() - start >= timeout_s:
                break
            if self.run_trial(budget, on_progress) == TrialState.FAIL:
                failures += 1
        return self.outcome()

    def run_trial(self, budget: Budget, on_progress: Progress | None = None) -> TrialState | None:
        """Ask for one trial, train it, record how it ended; None when the budget was taken before it ran."""
        return run_trial(self, budget, on_progress or (lambda info: None))

    def outcome(self) -> DatasetOutcome:
        return DatasetOutcome(self.dataset.key, self.study.study_name, self.parent_run_id, count_states(self.study),
                              failure_reasons(self.study))

    def end(self, on_summary: SummaryCallback | None = None) -> None:
        """Summarise the study and close its parent run, unless a trial of it still runs somewhere.

        Any process may be the last of a study's workers, so each one that stops asks; the one that claims
        the end (``ending.claim_end``) writes the summary, calls ``on_summary`` (the caller's dashboard) and
        registers the champion, and closing the parent run twice does no harm. An end whose process died
        before it was all written is taken over by the next one; a later top-up ends the study again.
        """
        spec, tracker = self.spec, self.tracker
        study = optuna.load_study(study_name=self.study.study_name, storage=make_storage(spec.storage_url))
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.RUNNING for t in trials):
            return  # another worker is still at it: the last one ends the study
        with during(f"the summary of {study.study_name}", kind="summary"):
            claim = claim_end(study, sum(t.state in ENDED for t in trials))
            if claim is not None:
                summarise(spec, tracker, study, self.dataset.key, self.parent_run_id, claim, on_summary)
        tracker.close_parent(self.parent_run_id)

    def close_interrupted(self) -> bool:
        """After Ctrl-C or SIGTERM: end the parent run KILLED with ``tlb.state=INTERRUPTED`` when no trial of
        the study still runs (another worker at work keeps it open); returns whether it was closed. The
        next top-up reopens it, as after any stop short of the budget."""
        if not (self.tracker.enabled and self.parent_run_id):
            return False
        study = optuna.load_study(study_name=self.study.study_name, storage=make_storage(self.spec.storage_url))
        if any(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
            return False
        self.tracker.set_tags(self.parent_run_id, {STATE: "INTERRUPTED"})
        self.tracker.close_parent(self.parent_run_id, status=RUN_STATUS["INTERRUPTED"])
        return True


__all__ = ["DatasetStudy", "RECONCILE_S", "RunEnv"]
