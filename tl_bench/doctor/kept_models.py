"""``tl-bench doctor`` on models: kept models and registered versions whose run or files are gone.

- ``model_without_files``: a trial's logged model lost its files (removed by
  hand) -> the logged model is deleted, so it no longer counts as kept.
- ``version_without_model``: a registered version whose trial run was deleted
  or whose model files are gone cannot be loaded however it is named
  (``models:/NAME@champion`` fails when the alias points to it) -> the version
  is deleted; when that takes the ``champion`` alias away, the alias moves to
  the best version left.
- ``model_left_pending``: a trial's logged model never became READY, and the process that logged it
  is gone (``tl_bench.study.pending``) -> finished when its files are whole (it loads and predicts
  its input example), else deleted.

Files are proven gone only while the experiment's artifact root can be read: a root that is missing
or unreadable (an unmounted share, a folder renamed away) ends the check with one ``StorageError``
line, before anything is deleted, with or without ``--repair``; so does a model folder that exists
and cannot be read.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from tl_bench.doctor.finding import Finding
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.tracking.names import TRIAL


def _val_acc(version: Any) -> float:  # an MLflow ModelVersion
    try:
        return float(version.tags.get("val_acc", "nan"))
    except ValueError:
        return math.nan


def check_models(spec: StudySpec, studies: list[tuple[DatasetSpec, optuna.Study]], *, repair: bool) -> list[Finding]:
    """One finding per kept model or registered version of the spec's dataset studies that cannot be loaded,
    and per model a dead process left PENDING (``studies``: those the Optuna storage holds)."""
    from tl_bench.study.pending import abandoned_models, settle
    from tl_bench.study.storage import optuna_study_id
    from tl_bench.tracking.artifact_store import check_artifact_store, check_model_folder
    from tl_bench.tracking.logged_models import delete_model, experiment_id, files_missing, kept_models
    from tl_bench.tracking.model_registry import champion, delete_version, registered_versions, set_champion, version_problem

    uri = spec.tracking_uri
    findings: list[Finding] = []
    experiment = experiment_id(uri, spec.name)
    opened = {ds.key: study for ds, study in studies}
    root_checked = False

    def readable_root() -> None:  # once, before the first model is judged: a store that is away proves nothing
        nonlocal root_checked
        if not root_checked and experiment is not None:
            check_artifact_store(uri, experiment)
            root_checked = True

    for ds in spec.datasets:
        study = opened.get(ds.key)
        for number, model in abandoned_models(study, uri, experiment) if study is not None and experiment else []:
            readable_root()
            found = Finding("model_left_pending", spec.study_name(ds), number, model.source_run_id,
                            f"the model of trial {number} is PENDING: its process stopped while logging it",
                            "finish it when its files are whole, else delete it")
            if repair:
                found.repair = "finished it: its files are whole" if settle(uri, experiment, model) else \
                    "deleted it: its files were cut short"
                found.repaired = True
            findings.append(found)
        study_id = optuna_study_id(study) if study is not None else ""
        for number, model in sorted(kept_models(uri, experiment, spec.study_name(ds), study_id).items()
                                    if experiment else []):
            readable_root()
            check_model_folder(uri, f"models:/{model.model_id}")
            if files_missing(uri, model.model_id):
                found = Finding("model_without_files", spec.study_name(ds), number, model.run_id,
                                f"the model of trial {number} has no files", "delete the logged model")
                if repair:
                    delete_model(uri, model.model_id)
                    found.repaired = True
                findings.append(found)
        name = spec.registered_model_name(ds)
        versions = registered_versions(uri, name=name)
        broken = []
        for version in versions:
            readable_root()
            check_model_folder(uri, version.source)
            problem = version_problem(uri, version)
            if problem is None:
                continue
            trial = version.tags.get(TRIAL, "")
            found = Finding("version_without_model", name, int(trial) if trial.isdigit() else None, version.run_id,
                            f"version {version.version} of {name}: {problem}", "delete the version")
            if repair:
                delete_version(uri, name, str(version.version))
                found.repaired = True
            broken.append(version.version)
            findings.append(found)
        left = [v for v in versions if v.version not in broken]
        if repair and broken and left and champion(uri, name) is None:
            best = max(left, key=lambda v: (_val_acc(v) if not math.isnan(_val_acc(v)) else -math.inf, -int(v.version)))
            set_champion(uri, name, str(best.version))
    return findings


__all__ = ["check_models"]
