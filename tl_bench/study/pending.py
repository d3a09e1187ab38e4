"""Kept models a worker left PENDING when it died while logging one: found, then finished or removed.

A trial's model is logged after the trial is COMPLETE (``trial._record``), so a worker killed in
between leaves a COMPLETE trial whose model never became READY: no kept model, and so no champion.
Its writer is known gone as a trial's worker is (``reconcile``): on this host its process has
ended; elsewhere the model is older than a store write can take. ``settle`` then finishes the model
when its files are whole and removes it otherwise; an artifact store that cannot be read settles
nothing (``StorageError``). ``publish_champion`` settles them before it ranks, ``tl-bench doctor``
reports them (``model_left_pending``).
"""

from __future__ import annotations

import time

import optuna

from tl_bench.faults import LOCK_WAIT_S
from tl_bench.study.reconcile import ran_here, worker_gone
from tl_bench.study.storage import optuna_study_id
from tl_bench.tracking.artifact_store import check_artifact_store, check_model_folder
from tl_bench.tracking.logged_models import LoggedModel, delete_model
from tl_bench.tracking.names import OPTUNA_STUDY_ID, TRIAL
from tl_bench.tracking.pending_models import files_whole, finish_model, pending_models

WRITE_S = LOCK_WAIT_S + 60  # a model logged on another host is abandoned once older than this


def abandoned_models(study: optuna.Study, tracking_uri: str, experiment_id: str) -> list[tuple[int, LoggedModel]]:
    """``(trial number, model)`` of each PENDING model of the study's trials whose writer is gone."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    study_id = optuna_study_id(study)
    out = []
    for model in pending_models(tracking_uri, experiment_id, study.study_name):
        trial = trials.get(int(model.tags[TRIAL]))
        if trial is None or model.tags.get(OPTUNA_STUDY_ID, study_id) != study_id:
            continue  # a namesake's, deleted with Optuna
        age_s = time.time() - (model.creation_timestamp or 0) / 1000
        if worker_gone(trial) or (not ran_here(trial) and age_s > WRITE_S):
            out.append((trial.number, model))
    return out


def settle(tracking_uri: str, experiment_id: str, model: LoggedModel) -> bool:
    """Finish an abandoned model whose files are whole (True) or remove it (False); a StorageError, and
    nothing changed, when the artifact store or the model's folder cannot be read."""
    check_artifact_store(tracking_uri, experiment_id)
    check_model_folder(tracking_uri, model.artifact_location)
    if files_whole(tracking_uri, model):
        finish_model(tracking_uri, model)
        return True
    delete_model(tracking_uri, model.model_id)
    return False


__all__ = ["WRITE_S", "abandoned_models", "settle"]
