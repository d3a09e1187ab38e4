"""What a run settles before its first trial: checkpoints, data, stores, the parent MLflow run.

Each step fails with one line before anything is recorded, so a bad dataset,
an unreachable store or a study made from another space costs no trial.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

import optuna

from tl_bench.config import Weights
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.errors import StorageError
from tl_bench.faults import check_links
from tl_bench.redact import redact
from tl_bench.study.storage import PARENT_RUN, check_study, make_storage, optuna_study_id, storage_faults
from tl_bench.tracking import Tracker, check_tracking_uri, flat_params, run_exists, store_missing

PARENT_WAIT_S = 60


def checkpoint_resolver(
    spec: StudySpec, tracker: Tracker | None, *, pretrain: bool = True
) -> Callable[[str, str], str | None]:
    """Map (backbone, weights label) to the checkpoint file it names: a file as given, or the
    local pretraining's checkpoint (pretrained now when missing, unless ``pretrain`` is off). A file
    that is truncated or damaged is refused in one line (``models.verify_checkpoint``)."""
    from tl_bench.models import verify_checkpoint
    from tl_bench.pretrain import checkpoint_path, ensure_pretrained

    def checkpoint_for(backbone: str, weights: str) -> str | None:
        parsed = Weights.parse(weights)
        if parsed.kind == "local":
            name = parsed.name
            if not pretrain:
                return str(checkpoint_path(spec, name, backbone))
            path = str(ensure_pretrained(spec, name, backbone, tracker=tracker))
        elif parsed.kind == "file":
            path = parsed.path
        else:
            return None
        verify_checkpoint(path)
        return path

    return checkpoint_for


def check_hub(spec: StudySpec) -> None:
    """WeightsError before anything is loaded or recorded when weights of the space come from the Hugging
    Face hub, which cannot be reached, and are not in the local cache (``tl_bench.models.hub``)."""
    from tl_bench.models.hub import check_hub as check

    check((b.name, w) for b in spec.space.backbones for w in b.weights)


def dataset_fingerprint(dataset: DatasetSpec, *, quiet: bool = True) -> str:
    """Load the dataset once (memoised for the trials) and return its fingerprint; fails early on bad data.

    Unreadable files are left out by the data layer; unless ``quiet``, their
    count is reported on stderr so a partly corrupt folder does not go unnoticed.
    """
    from tl_bench.data import load_dataset_for

    loaded = load_dataset_for(dataset.data_settings)
    if loaded.skipped and not quiet:
        sys.stderr.write(
            f"warning: dataset {dataset.key}: {len(loaded.skipped)} files skipped (e.g. {loaded.skipped[0]}); "
            "`tl-bench inspect-data` lists them\n"
        )
    return loaded.fingerprint


def check_stores(spec: StudySpec, *, tracking: bool = True, fingerprints: Mapping[str, str] | None = None,
                 continue_changed: bool = False) -> None:
    """StorageError or SpecError when a store cannot be used, or a stored study measures something else
    (unless ``continue_changed``; ``fingerprints``: dataset key -> its loaded data's fingerprint) or was
    recorded in another MLflow store (``tracking``: the MLflow store is checked too)."""
    check_links(spec.runs_dir, f"folder {str(spec.runs_dir)!r} (the study's default stores, cache and checkpoints)")
    if tracking:
        check_tracking_uri(spec.tracking_uri, write=True)
    storage = make_storage(spec.storage_url)
    for ds in spec.datasets:
        with storage_faults(spec.storage_url):
            study = check_study(storage, spec.study_name(ds), directions=list(spec.objective.directions),
                                space_digest=spec.space_digest(), source=str(spec.source_path),
                                identity=spec.identity(ds, (fingerprints or {}).get(ds.key)),
                                continue_changed=continue_changed)
        if study is not None and tracking:
            check_recorded_here(spec, study)


def check_recorded_here(spec: StudySpec, study: optuna.Study) -> None:
    """StorageError when ``study`` was recorded in another MLflow store than the spec's: its trials
    would be split over two stores, and reconciling would find none of its runs."""
    with storage_faults(spec.storage_url):
        run_id = study.user_attrs.get(PARENT_RUN)
    if run_id and (store_missing(spec.tracking_uri) or not run_exists(spec.tracking_uri, run_id)):
        raise StorageError(
            f"study {study.study_name!r} was recorded in another MLflow store: its run {run_id} "
            f"is not in {redact(spec.tracking_uri)!r}",
            "the --tracking-uri the study started with, or a new spec name for a new study",
        )


SEARCH_SECTIONS = ("space", "fixed", "objective", "sampler", "pruner", "budget")


def search_params(spec: StudySpec) -> dict[str, str]:
    """What a dataset study searched and how, as flat params of its parent run (``sampler.name``,
    ``space.hyper.lr.low``, ``budget.n_trials``, ...)."""
    return flat_params(spec.model_dump(mode="json", include=set(SEARCH_SECTIONS)))


def parent_run(study: optuna.Study, created: bool, tracker: Tracker, spec: StudySpec, dataset: DatasetSpec) -> str:
    """The dataset's parent run id, created once per study however many workers start together."""
    if not tracker.enabled:
        return ""

    def record(run_id: str) -> str:
        study.set_user_attr(PARENT_RUN, run_id)
        return run_id

    study_id = optuna_study_id(study)  # a namesake deleted with Optuna keeps its own parent run

    def create() -> str:
        return tracker.create_parent_run(study=spec.name, dataset=dataset.key, optuna_study=study.study_name,
                                         description=spec.description or "", params=search_params(spec),
                                         study_file=str(spec.source_path), study_id=study_id)

    if created:
        return record(tracker.find_parent_run(study.study_name, study_id) or create())
    deadline = time.monotonic() + PARENT_WAIT_S
    while True:
        run_id = study.user_attrs.get(PARENT_RUN)  # read from the storage each time
        if run_id:
            tracker.reopen_parent_run(run_id)
            return run_id
        if time.monotonic() > deadline:  # the creator died before writing it: take over
            return record(create())
        time.sleep(0.5)


__all__ = ["check_hub", "check_recorded_here", "check_stores", "checkpoint_resolver", "dataset_fingerprint", "parent_run",
           "search_params"]
