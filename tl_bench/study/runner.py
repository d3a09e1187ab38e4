"""``tl-bench run``: one Optuna study per (spec, dataset), topped up to its budget, then summarised.

The budget counts finished trials (complete or pruned): re-running the same
command resumes where the study stopped and never repeats finished work.
``workers > 1`` starts that many ``tl-bench run`` processes on this machine
against the same storage; many hosts do the same by sharing storage URLs.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tl_bench.config import TrialResult
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.study.keep import keeper_for, publish_champion, warn
from tl_bench.study.options import DatasetOutcome, RunOptions, SummaryCallback
from tl_bench.study.progress import StudyProgress
from tl_bench.study.reconcile import ENDED, reconcile
from tl_bench.screen import Candidate, kept
from tl_bench.study.states import FINISHED
from tl_bench.study.samplers import grid_exhausted, make_pruner, make_sampler
from tl_bench.study.screen import record_screen, screen
from tl_bench.study.setup import check_stores, checkpoint_resolver, dataset_fingerprint, parent_run
from tl_bench.study.space import SearchSpace
from tl_bench.study.start import candidate_starts
from tl_bench.study.storage import HEARTBEAT_S, claim_summary, make_storage, open_study, storage_faults
from tl_bench.study.summary import count_states, write_summary
from tl_bench.study.trial import TrialContext, run_trial
from tl_bench.study.warm_start import record_data, warm_start
from tl_bench.study.workers import spawn_workers, visible_cuda_devices
from tl_bench.tracking import START, WARM_START, Tracker
from tl_bench.train import FeatureCache

RECONCILE_S = 1.0  # between trials, dead workers are looked for at most this often


def run_spec(
    spec: StudySpec,
    options: RunOptions,
    *,
    worker_argv: list[str] | None = None,
    quiet: bool = False,
    train_fn: Callable[..., TrialResult] | None = None,
) -> list[DatasetOutcome]:
    """Top every dataset study of ``spec`` up to its budget; returns one outcome per dataset.

    With ``options.workers > 1`` (or ``options.dask``) this process sets every
    study up (pretraining, studies, parent runs, baselines), then ``worker_argv``
    is started that many times (or as many Dask tasks run the same loop) and
    this process only watches. Whichever process sees a study with no trial
    left running writes its summary and closes its parent run.

    A store that fails on the way (locked past the wait, read-only, full,
    gone) ends the run with one ``StorageError`` line; the trial it was on is
    repaired by the next start-up.
    """
    with storage_faults(spec.storage_url):
        return _run_spec(spec, options, worker_argv=worker_argv, quiet=quiet, train_fn=train_fn)


def _run_spec(
    spec: StudySpec,
    options: RunOptions,
    *,
    worker_argv: list[str] | None,
    quiet: bool,
    train_fn: Callable[..., TrialResult] | None,
) -> list[DatasetOutcome]:
    from tl_bench.models import count_stages
    from tl_bench.train import train_config

    stage_counts = {b.name: count_stages(b.name) for b in spec.space.backbones}
    # Bad data, unreachable stores and clashing studies fail here, before anything is recorded.
    fingerprints = {ds.key: dataset_fingerprint(ds, quiet=quiet) for ds in spec.datasets}
    check_stores(spec, tracking=options.track)
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location, enabled=options.track)
    if options.worker_index == 0:
        tracker.describe_experiment(spec.description)
    checkpoint_for = checkpoint_resolver(spec, tracker if options.track else None)
    if options.worker_index == 0:  # pretrain once, before any worker needs the checkpoints
        for backbone in spec.space.backbones:
            for weights in backbone.weights:
                checkpoint_for(backbone.name, weights)
    cache = FeatureCache(Path(spec.cache_dir))
    common = dict(train_fn=train_fn or train_config, checkpoint_for=checkpoint_for, stage_counts=stage_counts,
                  cache=cache, tracker=tracker)
    screened = {ds.key: screen(spec, ds, checkpoint_for=checkpoint_for, cache=cache, quiet=quiet)
                for ds in spec.datasets} if spec.screen is not None else {}
    total = options.n_trials if options.n_trials is not None else spec.budget.n_trials
    outcomes: list[DatasetOutcome] = []
    # torch, timm, MLflow and Optuna leave close to a million long-lived objects behind their imports;
    # each full garbage collection walks them all (~0.4 s on a 2-core CPU), and every trial's allocations
    # trigger more. Frozen, they are skipped by the collector; what trials allocate is still collected.
    # Collected once first, so that no garbage from start-up or pretraining is frozen with them.
    gc.collect()
    gc.freeze()
    parallel = options.workers > 1 or options.dask is not None
    with StudyProgress(quiet=quiet) as progress:
        if parallel:
            for ds in spec.datasets:
                progress.start(ds.key, None, total)
                setup = RunOptions(n_trials=0, track=options.track, summarize=False, on_study=_attach(progress, ds.key))
                run_dataset(spec, ds, setup, fingerprint=fingerprints[ds.key], screened=screened.get(ds.key), **common)
            if options.dask is not None:
                from tl_bench.study.dask_tasks import run_on_dask

                run_on_dask(spec, options, run_spec, tick=progress.refresh)
            else:
                devices = options.devices if options.devices is not None else visible_cuda_devices()
                spawn_workers(list(worker_argv or []), options.workers, devices=devices, tick=progress.refresh)
        for ds in spec.datasets:
            if parallel:  # workers did the trials: collect the outcome only
                run_opts = RunOptions(n_trials=0, track=options.track)
            else:
                progress.start(ds.key, None, total)
                run_opts = RunOptions(
                    n_trials=options.n_trials,
                    timeout_s=options.timeout_s,
                    worker_index=options.worker_index,
                    track=options.track,
                    on_progress=progress.on_progress,
                    on_study=_attach(progress, ds.key),
                )
            outcome = run_dataset(spec, ds, run_opts, fingerprint=fingerprints[ds.key], screened=screened.get(ds.key),
                                  **common)
            if options.summarize and options.track:
                end_study(spec, tracker, outcome, options.on_summary)
            outcomes.append(outcome)
        progress.finish()
    return outcomes


def run_dataset(
    spec: StudySpec,
    dataset: DatasetSpec,
    options: RunOptions,
    *,
    train_fn: Callable[..., TrialResult],
    checkpoint_for: Callable[[str, str], str | None],
    stage_counts: dict[str, int],
    cache: FeatureCache | None = None,
    tracker: Tracker,
    fingerprint: str | None = None,
    screened: list[Candidate] | None = None,
) -> DatasetOutcome:
    """Top one dataset's study up to its budget in this process, recording it with ``tracker``.

    ``screened``: the dataset's candidates ranked by screening; the search keeps the spec's
    ``screen.keep`` best of them, and the study that is created now records every score.
    """
    keep = spec.screen.keep if spec.screen is not None else None
    chosen = [c.key for c in kept(screened, keep)[0]] if screened else None
    space = SearchSpace(spec, stage_counts, candidates=chosen)
    storage = make_storage(spec.storage_url)
    study, created = open_study(
        storage,
        spec.study_name(dataset),
        directions=list(spec.objective.directions),
        metric_names=list(spec.objective.metrics),
        sampler=make_sampler(spec, grid_space=space.grid_space() if space.grid else None, seed_offset=options.worker_index),
        pruner=make_pruner(spec),
        space_digest=spec.space_digest(),
        source=str(spec.source_path),
    )
    if options.on_study is not None:
        options.on_study(study)
    parent = parent_run(study, created, tracker, spec, dataset)
    if created:
        record_data(study, dataset.data_settings)
        if screened:
            record_screen(study, tracker, spec, dataset, parent, screened)
        for baseline in spec.baselines:
            if space.offers(baseline):  # a baseline of a candidate that screening dropped does not run
                study.enqueue_trial(space.baseline_params(baseline), skip_if_exists=True)
        if spec.warm_start is not None:
            notes = warm_start(study, storage, spec, space, dataset.data_settings)
            if tracker.enabled and parent:
                tracker.set_tags(parent, {WARM_START: "; ".join(notes) or "no source study"})
        if spec.start == "candidates":
            starts = candidate_starts(space, chosen)
            for params in starts:
                study.enqueue_trial(params, skip_if_exists=True)
            if tracker.enabled and parent:
                tracker.set_tags(parent, {START: f"candidates: {len(starts)} standard fine-tune(s) first"})
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
        checkpoint_for=checkpoint_for,
        train_fn=train_fn,
        metrics=list(spec.objective.metrics),
        n_trials=n_trials,
        fingerprint=fingerprint,
        cache=cache,
        on_progress=options.on_progress or (lambda info: None),
        keeper=keeper_for(spec, study, tracker, dataset.key),
    )
    start = time.monotonic()
    checked = stale_checked = start  # the reconcile above asked for dead workers and stale heartbeats just now
    failures = 0
    max_failures = max(3, n_trials or 10)  # a study whose every trial fails must still end
    while True:
        # A worker that died elsewhere holds a RUNNING trial that counts against the budget: free it. Asked
        # at most once a second (stale heartbeats once per interval), and always before the budget ends it.
        now = time.monotonic()
        spent = _budget_left(study, n_trials) <= 0
        if spent or now - checked >= RECONCILE_S:
            stale = now - stale_checked >= HEARTBEAT_S
            if reconcile(study, tracker, all_runs=False, stale=stale) and spent:
                spent = _budget_left(study, n_trials) <= 0
            checked, stale_checked = now, now if stale else stale_checked
        if spent or failures >= max_failures or grid_exhausted(study):
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        if run_trial(ctx) == TrialState.FAIL:
            failures += 1
    return DatasetOutcome(dataset.key, study.study_name, parent, count_states(study))


def _budget_left(study: optuna.Study, n_trials: int | None) -> float:
    if n_trials is None:
        return float("inf")
    taken = len(study.get_trials(deepcopy=False, states=FINISHED + (TrialState.RUNNING,)))
    return n_trials - taken


def end_study(
    spec: StudySpec, tracker: Tracker, outcome: DatasetOutcome, on_summary: SummaryCallback | None = None
) -> None:
    """Summarise the study and close its parent run, unless a trial of it still runs somewhere.

    Any process may be the last of a study's workers, so each one that stops
    asks; one of them writes the summary for this count of ended trials (then
    calls ``on_summary``: the caller's dashboard), and closing the parent run
    twice does no harm. A later top-up does it again.
    """
    study = optuna.load_study(study_name=outcome.study_name, storage=make_storage(spec.storage_url))
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.RUNNING for t in trials):
        return  # another worker is still at it: the last one ends the study
    if claim_summary(study, sum(t.state in ENDED for t in trials)):
        write_summary(study, tracker, outcome.parent_run_id, spec.description)
        if on_summary is not None:
            on_summary(spec, tracker, outcome.dataset, outcome.parent_run_id)
        try:
            publish_champion(spec, tracker, study, outcome.dataset)
        except Exception as err:
            warn(f"the best model of {outcome.study_name} was not registered", err)
    tracker.close_parent(outcome.parent_run_id)


def _attach(progress: StudyProgress, key: str) -> Callable[[optuna.Study], None]:
    return lambda study: progress.attach(key, study)


__all__ = ["DatasetOutcome", "RunOptions", "end_study", "run_dataset", "run_spec"]
