"""Every name tl-bench gives things in MLflow: tags, run kinds, params, metrics, run names.

An experiment per study spec (named after the spec), a parent run per dataset
study (``tlb.kind=study``), a nested child run per trial (``tlb.kind=trial``),
and runs of their own kind for local pretraining (``tlb.kind=pretrain``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

import tl_bench
from tl_bench.config import TrialConfig, TrialResult, Weights

# Tags of every tl-bench run.
KIND = "tlb.kind"
STUDY = "tlb.study"
DATASET = "tlb.dataset"
OPTUNA_STUDY = "tlb.optuna_study"
OPTUNA_STUDY_ID = "tlb.optuna_study_id"  # which study of that name (one deleted and created again is another)
VERSION = "tlb.version"
# Trial runs.
TRIAL = "tlb.trial"
STATE = "tlb.state"
ERROR = "tlb.error"
PRUNED_EPOCH = "tlb.pruned_epoch"  # the epoch after which a pruned trial was stopped
PRUNED_REASON = "tlb.pruned_reason"  # the pruner and the value it judged
FEASIBLE = "tlb.feasible"  # "true" or "false": whether the trial met the study's constraints
N_STAGES = "tlb.n_stages"
THREADS = "tlb.threads"  # torch threads of the worker that ran it
CUDA_VISIBLE_DEVICES = "tlb.cuda_visible_devices"  # the worker's CUDA_VISIBLE_DEVICES ("" when unset)
FLAG_PREFIX = "tlb."  # a result's yes/no fields are tags: tlb.cache_used, tlb.cache_hit, tlb.ema_tested
# Parent runs: the study summary.
BEST_TRIAL = "tlb.best_trial"
BEST_RUN_ID = "tlb.best_run_id"
BEST_RUN_LINK = "tlb.best_run_link"  # the best trial's page in the MLflow UI, as a link relative to the UI
IMPORTANCE_EVALUATOR = "tlb.importance_evaluator"  # the Optuna evaluator behind the importance.* metrics
# Logged models of kept trials and their registered versions.
MODEL_NAME = "model"  # runs:/<run_id>/model names a run's logged model whatever its own name
RUN_ID = "tlb.run_id"  # the trial run a registered version came from
MODEL_ID = "tlb.model_id"  # the logged model a registered version points to
CHAMPION = "champion"  # registry alias of the best version of <study>-<dataset>
CHALLENGER = "challenger"  # registry alias of a version that has not (yet) earned champion, e.g. a refit
SCREEN_DROPPED = "tlb.screen_dropped"  # the candidates screening left out of the search
WARM_START = "tlb.warm_start"  # what a warm start enqueued, per source study
START = "tlb.start"  # the standard fine-tunes `start: candidates` enqueued, one per candidate
# What the study file changed in what the study measures, and when, each time `--continue-changed` accepted it
IDENTITY_CHANGED = "tlb.identity_changed"
# Pretraining runs.
SOURCE = "tlb.source"
SOURCE_DATASET = "tlb.source_dataset"
CHECKPOINT = "tlb.checkpoint"
HOST = "tlb.host"  # the process that wrote the run: `tl-bench doctor` ends it when that process is gone
PID = "tlb.pid"
# Repairs (``tl-bench doctor``).
DUPLICATE_OF = "tlb.duplicate_of"
ORPHAN = "tlb.orphan"
REPAIRED = "tlb.repair"  # which finding a repair answered
# MLflow's own tags: nesting under the parent run, and the run's description.
PARENT_RUN_ID = MLFLOW_PARENT_RUN_ID
RUN_NOTE = MLFLOW_RUN_NOTE

# Values of KIND.
KIND_STUDY = "study"
KIND_TRIAL = "trial"
KIND_PRETRAIN = "pretrain"
KIND_PRETRAINING = "pretraining"  # the run the pretraining runs of an experiment are nested under
KIND_SCREEN = "screen"
KIND_REFIT = "refit"  # a chosen setting retrained on train + validation, nested under its study's parent run

# Optuna trial state -> MLflow run status.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "INTERRUPTED": "KILLED"}
# Per-epoch curves, logged as ``epoch_<name>`` with ``step=epoch``.
CURVES = ("train_loss", "val_acc", "val_loss", "val_top5", "lr")
# Parent-run metrics holding Optuna's parameter importances: ``importance.<param>``.
IMPORTANCE_PREFIX = "importance."
IMPORTANCE_TRIALS = "importance_trials"  # parent-run metric: the complete trials the importances rest on
# Fewer complete trials than this and PED-ANOVA's importances are noise (two datasets of 10 random trials gave
# the same ranking, at odds with both leaderboards): none are computed, and the summary says why.
MIN_IMPORTANCE_TRIALS = 20
# MLflow keeps longer tag and param values only on some stores: cut them everywhere alike.
MAX_TAG = 5000
MAX_PARAM = 6000


def _fields(config: TrialConfig | Mapping[str, Any]) -> dict[str, Any]:
    # A config that could not be built is recorded from the values it was to be built from.
    return dict(config) if isinstance(config, Mapping) else config.to_dict()


def trial_run_name(config: TrialConfig | Mapping[str, Any], trial_number: int, dataset: str = "") -> str:
    """``<dataset>-<backbone>-<weights>-f<freeze_depth>-<neck>-<head>-t<trial>``: unique within a study, whose
    Optuna study (and trial numbers) are per dataset; a checkpoint file shows as its short label (``Weights.short``)."""
    values = {"backbone": "?", "weights": "?", "freeze_depth": "?", "neck": "?", "head": "?", **_fields(config)}
    weights = Weights.parse(str(values["weights"])).short
    recipe = f"{values['backbone']}-{weights}-f{values['freeze_depth']}-{values['neck']}-{values['head']}-t{trial_number}"
    return f"{dataset}-{recipe}" if dataset else recipe


STUDY_FILE_DIR = "study"  # artifact folder of a parent run holding the study file it was run from
PRETRAINING_RUN = "pretraining"  # run name of the KIND_PRETRAINING run


def pretrain_run_name(source: str, backbone: str) -> str:
    """``pretrain-<source>-<backbone>``: the run of one local pretraining checkpoint."""
    return f"pretrain-{source}-{backbone}"


def pretrain_tags(*, source: str, checkpoint: str, source_dataset: str) -> dict[str, str]:
    """The tags that make a run the pretraining run of ``checkpoint`` (weights ``local:<source>``)."""
    return {KIND: KIND_PRETRAIN, VERSION: tl_bench.__version__, SOURCE: source, CHECKPOINT: checkpoint,
            SOURCE_DATASET: source_dataset}


def config_params(config: TrialConfig | Mapping[str, Any]) -> dict[str, str]:
    """Every TrialConfig field (or every value a config was to be built from) as a flat MLflow param; a
    checkpoint file's ``weights`` as its short label, its path in ``weights_path``."""
    out = {}
    for key, value in _fields(config).items():
        out[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    weights = Weights.parse(out.get("weights", ""))
    if weights.kind == "file":
        out["weights"] = weights.short
        if out.get("weights_path", "None") in ("None", ""):
            out["weights_path"] = weights.path
    return out


def result_flags(result: TrialResult) -> dict[str, str]:
    """A result's yes/no fields (``cache_used``, ``cache_hit``, ``ema_tested``) as ``tlb.<name>`` tags
    ("true"/"false"): charts and parallel plots are drawn for metrics, and a flag is no quantity.
    Runs written before kept them as 0/1 metrics."""
    return {f"{FLAG_PREFIX}{k}": str(v).lower() for k, v in result.to_dict().items() if isinstance(v, bool)}


def result_metrics(result: TrialResult) -> dict[str, float]:
    """A result's numeric fields, the flags of ``result_flags`` left out."""
    flags = {k for k, v in result.to_dict().items() if isinstance(v, bool)}
    return {k: v for k, v in result.metrics().items() if k not in flags}


SHOWN_DIGITS = 6  # significant digits a trial's measured fractions keep: beyond what timing or k/n accuracy resolves


def shown_value(value: float) -> float:
    """``value`` as logged: whole numbers (counts, FLOPs) exact, others to ``SHOWN_DIGITS`` significant digits,
    so the MLflow UI, which prints a metric as stored, shows 0.189239 rather than 0.18923933209647495."""
    value = float(value)
    return value if value.is_integer() else float(f"{value:.{SHOWN_DIGITS}g}")


def pruned_tags(epoch: int, reason: str) -> dict[str, str]:
    """The tags of a pruned trial's run: at which epoch and why, also as the run's description."""
    return {PRUNED_EPOCH: str(epoch), PRUNED_REASON: reason,
            RUN_NOTE: f"Pruned at epoch {epoch} ({reason}): stopped early by Optuna's pruner, not failed."}


def flat_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as flat MLflow params: ``sampler.name``, ``space.hyper.lr.low``; a list of named
    items is keyed by name (``space.backbones.test_vit.weights``), other lists are joined; None is left out."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat_params(value, f"{name}.")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) and "name" in v for v in value):
            for item in value:
                rest = {k: v for k, v in item.items() if k != "name"}
                out |= flat_params(rest, f"{name}.{item['name']}.") if rest else {f"{name}.{item['name']}": "yes"}
        elif isinstance(value, list):
            out[name] = ", ".join(json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value)
        elif value is not None:
            out[name] = str(value)
    return out


def logged_model_name(tags: Mapping[str, str]) -> str:
    """What a logged model is called in MLflow, from its tags: ``<study>-<dataset>-t<trial>`` for a
    trial's model, ``<study>-<dataset>-refit-t<trial>`` for a refit's, ``<study>-<dataset>-<kind>``
    for a soup's or an ensemble's. MLflow refuses ``/ : . % " '`` in a model name: each becomes ``_``."""
    parts = [tags.get(STUDY, ""), tags.get(DATASET, "")]
    kind = tags.get(KIND, "")
    if kind and kind != KIND_TRIAL:
        parts.append(kind)
    if tags.get(TRIAL, "").isdigit():
        parts.append(f"t{tags[TRIAL]}")
    name = "-".join(p for p in parts if p)
    return re.sub(r"[/:.%\"']", "_", name) or MODEL_NAME


def trial_tags(*, study: str, dataset: str, trial_number: int, state: str, parent_run_id: str = "") -> dict[str, str]:
    """The tags that make a run a trial run of ``study``, nested under its parent when there is one."""
    tags = {KIND: KIND_TRIAL, STUDY: study, DATASET: dataset, TRIAL: str(trial_number), STATE: state,
            VERSION: tl_bench.__version__}
    if parent_run_id:
        tags[PARENT_RUN_ID] = parent_run_id
    return tags


__all__ = [
    "FEASIBLE",
    "FLAG_PREFIX",
    "BEST_RUN_ID",
    "BEST_RUN_LINK",
    "BEST_TRIAL",
    "CHALLENGER",
    "CHAMPION",
    "CHECKPOINT",
    "CUDA_VISIBLE_DEVICES",
    "CURVES",
    "DATASET",
    "DUPLICATE_OF",
    "ERROR",
    "HOST",
    "IMPORTANCE_EVALUATOR",
    "IMPORTANCE_PREFIX",
    "IMPORTANCE_TRIALS",
    "MIN_IMPORTANCE_TRIALS",
    "KIND",
    "KIND_PRETRAIN",
    "KIND_PRETRAINING",
    "KIND_REFIT",
    "KIND_SCREEN",
    "KIND_STUDY",
    "KIND_TRIAL",
    "MAX_PARAM",
    "MAX_TAG",
    "MODEL_ID",
    "MODEL_NAME",
    "N_STAGES",
    "OPTUNA_STUDY",
    "OPTUNA_STUDY_ID",
    "ORPHAN",
    "PARENT_RUN_ID",
    "PID",
    "PRETRAINING_RUN",
    "PRUNED_EPOCH",
    "PRUNED_REASON",
    "REPAIRED",
    "RUN_ID",
    "RUN_NOTE",
    "RUN_STATUS",
    "SCREEN_DROPPED",
    "SOURCE",
    "SOURCE_DATASET",
    "START",
    "IDENTITY_CHANGED",
    "STATE",
    "STUDY",
    "STUDY_FILE_DIR",
    "THREADS",
    "TRIAL",
    "VERSION",
    "WARM_START",
    "config_params",
    "flat_params",
    "logged_model_name",
    "pretrain_run_name",
    "pretrain_tags",
    "pruned_tags",
    "result_flags",
    "result_metrics",
    "shown_value",
    "trial_run_name",
    "trial_tags",
]
