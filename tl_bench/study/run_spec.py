"""Run every dataset study of a spec: prepare once, then trials (here or in workers), then summaries."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from tl_bench.study.progress import StudyProgress
from tl_bench.study.runner import DatasetOutcome, RunOptions, run_dataset, spawn_workers
from tl_bench.study.storage import check_study, make_storage, study_name
from tl_bench.study.summary import write_summary
from tl_bench.tracking import Tracker, check_server, is_server

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt")


def weights_resolver(spec: Any, tracker: Tracker | None) -> Callable[[str, str], str | None]:
    """Map a weights label to the checkpoint file it names (pretraining locally when needed)."""

    def resolve(backbone: str, weights: str) -> str | None:
        if weights.startswith("local:"):
            from tl_bench.pretrain import ensure_pretrained

            return str(ensure_pretrained(spec, weights.split(":", 1)[1], backbone, tracker=tracker))
        if weights.endswith(CHECKPOINT_SUFFIXES):
            return weights
        return None

    return resolve


def dataset_fingerprint(dataset: Any, *, quiet: bool = True) -> str:
    """Load the dataset once (memoised for the trials) and return its fingerprint; fails early on bad data.

    Unreadable files are left out by the data layer; unless ``quiet``, their
    count is reported on stderr so a partly corrupt folder does not go unnoticed.
    """
    from tl_bench.data import load_dataset

    loaded = load_dataset(
        dataset.name,
        img_size=dataset.img_size,
        train_size=dataset.train_size,
        val_size=dataset.val_size,
        seed=dataset.split_seed,
        root=dataset.root,
        download=dataset.download,
        **dict(dataset.options or {}),
    )
    if loaded.skipped and not quiet:
        sys.stderr.write(
            f"warning: dataset {dataset.key}: {len(loaded.skipped)} files skipped (e.g. {loaded.skipped[0]}); "
            "`tl-bench inspect-data` lists them\n"
        )
    return loaded.fingerprint


def check_stores(spec: Any) -> None:
    """StorageError or SpecError when a store does not answer or a stored study was made from another space."""
    if is_server(spec.tracking_uri):
        check_server(spec.tracking_uri)
    storage = make_storage(spec.storage_url)
    for ds in spec.datasets:
        check_study(storage, study_name(spec.name, ds.key), directions=list(spec.objective.directions),
                    space_digest=spec.space_digest(), source=str(spec.source_path))


def run_spec(
    spec: Any,
    options: RunOptions,
    *,
    worker_argv: list[str] | None = None,
    quiet: bool = False,
    train_fn: Callable[..., Any] | None = None,
) -> list[DatasetOutcome]:
    """Top every dataset study of ``spec`` up to its budget; returns one outcome per dataset.

    With ``options.workers > 1`` this process sets every study up (pretraining,
    studies, parent runs, baselines), then ``worker_argv`` is started that
    many times and this process only watches and summarises.
    """
    from tl_bench.models import count_stages
    from tl_bench.train import FeatureCache, run_trial

    stage_counts = {b.name: count_stages(b.name) for b in spec.space.backbones}
    # Bad data, unreachable stores and clashing studies fail here, before anything is recorded.
    fingerprints = {ds.key: dataset_fingerprint(ds, quiet=quiet) for ds in spec.datasets}
    check_stores(spec)
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location, enabled=options.track)
    resolve = weights_resolver(spec, tracker if options.track else None)
    if options.worker_index == 0:  # pretrain once, before any worker needs the checkpoints
        for backbone in spec.space.backbones:
            for weights in backbone.weights:
                resolve(backbone.name, weights)
    cache = FeatureCache(Path(spec.cache_dir))
    common = dict(train_fn=train_fn or run_trial, resolve_weights=resolve, stage_counts=stage_counts, cache=cache,
                  tracker=tracker)
    total = options.n_trials if options.n_trials is not None else spec.budget.n_trials
    outcomes: list[DatasetOutcome] = []
    # torch, timm, MLflow and Optuna leave close to a million long-lived objects behind their imports;
    # each full garbage collection walks them all (~0.4 s on a 2-core CPU), and every trial's allocations
    # trigger more. Frozen, they are skipped by the collector; what trials allocate is still collected.
    # Collected once first, so that no garbage from start-up or pretraining is frozen with them.
    gc.collect()
    gc.freeze()
    with StudyProgress(quiet=quiet) as progress:
        if options.workers > 1:
            for ds in spec.datasets:
                progress.start(ds.key, None, total)
                setup = RunOptions(n_trials=0, track=options.track, on_study=_attach(progress, ds.key))
                run_dataset(spec, ds, setup, fingerprint=fingerprints[ds.key], **common)
            spawn_workers(list(worker_argv or []), options.workers, tick=progress.refresh)
        for ds in spec.datasets:
            if options.workers > 1:  # workers did the trials: collect the outcome only
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
            outcome = run_dataset(spec, ds, run_opts, fingerprint=fingerprints[ds.key], **common)
            if options.summarize and options.track and options.worker_index == 0:
                study = optuna.load_study(study_name=outcome.study_name, storage=make_storage(spec.storage_url))
                write_summary(study, tracker, outcome.parent_run_id)
                tracker.close_parent(outcome.parent_run_id)
            outcomes.append(outcome)
        progress.finish()
    return outcomes


def _attach(progress: StudyProgress, key: str) -> Callable[[optuna.Study], None]:
    return lambda study: progress.attach(key, study)


__all__ = ["run_spec", "check_stores", "weights_resolver", "dataset_fingerprint"]
