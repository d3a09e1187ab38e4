"""``tl-bench run``: ``run_spec`` -> ``DatasetStudy.top_up`` per dataset -> ``run_trial`` -> ``train_config``.

The budget counts finished trials (complete or pruned) and those still running
(``Budget``): re-running the same command resumes where the study stopped and
never repeats finished work. ``workers > 1`` starts that many ``tl-bench run``
processes on this machine against the same storage; many hosts do the same by
sharing storage URLs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

from tl_bench.config import TrialResult
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.spec.memory_bound import check_img_sizes
from tl_bench.study.budget import Budget
from tl_bench.study.dataset_study import DatasetStudy, RunEnv
from tl_bench.study.interrupts import during
from tl_bench.study.options import DatasetOutcome, RunOptions
from tl_bench.study.progress import StudyProgress
from tl_bench.study.screen import screen
from tl_bench.study.preflight import check_hub, check_stores, checkpoint_resolver, dataset_fingerprint
from tl_bench.study.storage import storage_faults
from tl_bench.study.workers import spawn_workers, visible_cuda_devices
from tl_bench.tracking import Tracker
from tl_bench.train import FeatureCache


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
    env = _prepare_env(spec, options, quiet=quiet, train_fn=train_fn)
    total = options.n_trials if options.n_trials is not None else spec.budget.n_trials
    budget = Budget(total)
    outcomes: list[DatasetOutcome] = []
    # torch, timm, MLflow and Optuna leave close to a million long-lived objects behind their imports;
    # each full garbage collection walks them all (~0.4 s on a 2-core CPU), and every trial's allocations
    # trigger more. Frozen, they are skipped by the collector; what trials allocate is still collected.
    # Collected once first, so that no garbage from start-up or pretraining is frozen with them.
    gc.collect()
    gc.freeze()
    parallel = options.workers > 1 or options.dask is not None
    timeout_s = options.timeout_s if options.timeout_s is not None else spec.budget.timeout_s

    opened_studies: list[DatasetStudy] = []

    def opened(ds: DatasetSpec) -> DatasetStudy:
        progress.start(ds.key, None, total)
        study = DatasetStudy.open(env, ds, worker_index=options.worker_index)
        opened_studies.append(study)
        progress.attach(ds.key, study.study)
        study.prepare()
        return study

    try:
        with StudyProgress(quiet=quiet) as progress:
            if parallel:  # this process sets every study up, then only watches: the workers run the trials
                studies = [opened(ds) for ds in spec.datasets]
                if options.dask is not None:
                    from tl_bench.study.dask_tasks import run_on_dask

                    run_on_dask(spec, options, run_spec, tick=progress.refresh)
                else:
                    devices = options.devices if options.devices is not None else visible_cuda_devices()
                    spawn_workers(list(worker_argv or []), options.workers, devices=devices, tick=progress.refresh)
            for index, ds in enumerate(spec.datasets):
                if parallel:
                    study = studies[index]
                    study.repair(all_runs=True)  # what workers that died left behind, before the study ends
                    outcome = study.outcome()
                else:
                    study = opened(ds)
                    outcome = study.top_up(budget, timeout_s=timeout_s, on_progress=progress.on_progress)
                if options.summarize and options.track:
                    study.end(options.on_summary)
                outcomes.append(outcome)
            progress.finish()
        return outcomes
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the interrupted trial is already failed; each parent run this process opened
        # is closed as interrupted unless another worker's trial still runs in its study.
        for study in opened_studies:
            try:
                study.close_interrupted()
            except Exception:  # a store that fails now is left to the next start-up or doctor --repair
                pass
        raise


def _prepare_env(spec: StudySpec, options: RunOptions, *, quiet: bool,
                 train_fn: Callable[..., TrialResult] | None) -> RunEnv:
    """What the process's dataset studies share, settled before any of them opens: bad data, unreachable
    stores and clashing studies fail here, before anything is recorded; checkpoints are pretrained once
    (by the first worker) and screening runs."""
    from tl_bench.models import count_stages
    from tl_bench.train import train_config

    if options.dask not in (None, "local"):  # a dead scheduler address is told before any store is touched
        from tl_bench.study.dask_tasks import check_scheduler

        check_scheduler(options.dask)
    check_hub(spec)  # hub weights the hub cannot give: one line now rather than a failure per trial
    check_img_sizes(spec)  # again, now that torch is loaded: one batch must fit in the GPU's memory too
    stage_counts = {b.name: count_stages(b.name) for b in spec.space.backbones}
    fingerprints = {ds.key: dataset_fingerprint(ds, quiet=quiet) for ds in spec.datasets}
    check_stores(spec, tracking=options.track, fingerprints=fingerprints, continue_changed=options.continue_changed)
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location, enabled=options.track)
    if options.worker_index == 0:
        tracker.describe_experiment(spec.description)
    checkpoint_for = checkpoint_resolver(spec, tracker if options.track else None)
    if options.worker_index == 0:  # pretrain once, before any worker needs the checkpoints
        with during("pretraining"):
            for backbone in spec.space.backbones:
                for weights in backbone.weights:
                    checkpoint_for(backbone.name, weights)
    cache = FeatureCache(Path(spec.cache_dir))
    with during("screening"):
        screened = {ds.key: screen(spec, ds, checkpoint_for=checkpoint_for, cache=cache, quiet=quiet)
                    for ds in spec.datasets} if spec.screen is not None else {}
    return RunEnv(spec, tracker, checkpoint_for, stage_counts, train_fn or train_config, fingerprints=fingerprints,
                  screened=screened, cache=cache, continue_changed=options.continue_changed)


__all__ = ["run_spec"]
