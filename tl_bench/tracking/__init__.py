"""The MLflow boundary: the only code of tl-bench that imports MLflow."""

from __future__ import annotations

from tl_bench.tracking.write import (
    DATASET,
    ERROR,
    KIND,
    N_STAGES,
    OPTUNA_STUDY,
    RUN_STATUS,
    STATE,
    STUDY,
    TRIAL,
    VERSION,
    Tracker,
    check_server,
    config_params,
    is_server,
    trial_run_name,
)

__all__ = [
    "DATASET",
    "ERROR",
    "KIND",
    "N_STAGES",
    "OPTUNA_STUDY",
    "RUN_STATUS",
    "STATE",
    "STUDY",
    "TRIAL",
    "VERSION",
    "Tracker",
    "check_server",
    "config_params",
    "is_server",
    "trial_run_name",
]
