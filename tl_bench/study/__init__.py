"""Studies: one Optuna study per (spec, dataset), each trial recorded as an MLflow run.

``run_spec`` is the whole of ``tl-bench run``: it settles checkpoints, data and
stores, then tops every dataset study up to its budget (``run_dataset``), one
trial at a time (``trial.run_trial``: ask, train, tell), and summarises each.
``storage`` is the one place that touches Optuna's private API.
"""

from __future__ import annotations

from tl_bench.study.runner import DatasetOutcome, RunOptions, run_dataset, run_spec
from tl_bench.study.setup import check_stores
from tl_bench.study.storage import make_storage, open_study
from tl_bench.study.trial import Terminated

__all__ = ["DatasetOutcome", "RunOptions", "Terminated", "check_stores", "make_storage", "open_study", "run_dataset", "run_spec"]
