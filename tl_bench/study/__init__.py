"""Studies: one Optuna study per (spec, dataset), each trial recorded as an MLflow run.

``run_spec`` is the whole of ``tl-bench run``: it settles checkpoints, data and
stores (``RunEnv``), then opens each ``DatasetStudy`` and tops it up to its
``Budget``, one trial at a time (``trial.run_trial``: ask, train, one classified
end told to both stores), and ends it. ``storage`` is the one place that touches
Optuna's private API.
"""

from __future__ import annotations

from typing import Any

from tl_bench.study.options import DatasetOutcome, RunOptions

# Loaded on first use: the runner brings torch and the trainer, which `tl-bench doctor` and the
# light modules of this package (states, storage, reconcile) never need.
_LAZY = {"run_spec": "runner", "DatasetStudy": "dataset_study", "RunEnv": "dataset_study", "Budget": "budget",
         "check_stores": "preflight", "make_storage": "storage", "open_study": "storage", "Terminated": "trial"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tl_bench.study' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"tl_bench.study.{_LAZY[name]}"), name)


__all__ = ["Budget", "DatasetOutcome", "DatasetStudy", "RunEnv", "RunOptions", "Terminated", "check_stores",
           "make_storage", "open_study", "run_spec"]
