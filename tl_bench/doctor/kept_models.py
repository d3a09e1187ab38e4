"""``tl-bench doctor`` on models: kept models and registered versions whose run or files are gone.

- ``model_without_files``: a trial's logged model lost its files (removed by
  hand) -> the logged model is deleted, so it no longer counts as kept.
- ``version_without_model``: a registered version whose trial run was deleted
  or whose model files are gone cannot be loaded however it is named
  (``models:/NAME@champion`` fails when the alias points to it) -> the version
  is deleted; when that takes the ``champion`` alias away, the alias moves to
  the best version left.
"""

from __future__ import annotations

import math
from typing import Any

from tl_bench.doctor.finding import Finding
from tl_bench.spec import StudySpec
from tl_bench.tracking.names import TRIAL


def _val_acc(version: Any) -> float:  # an MLflow ModelVersion
    try:
        return float(version.tags.get("val_acc", "nan"))
    except ValueError:
        return math.nan


def check_models(spec: StudySpec, *, repair: bool) -> list[Finding]:
    """One finding per kept model or registered version of the spec's dataset studies that cannot be loaded."""
    from tl_bench.tracking.model_registry import champion, delete_version, registered_versions, set_champion, version_problem

    from tl_bench.tracking.logged_models import delete_model, experiment_id, files_missing, kept_models

    uri = spec.tracking_uri
    findings: list[Finding] = []
    experiment = experiment_id(uri, spec.name)
    for ds in spec.datasets:
        for number, model in sorted(kept_models(uri, experiment, spec.study_name(ds)).items() if experiment else []):
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
