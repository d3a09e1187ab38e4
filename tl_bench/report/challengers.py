"""The challengers of a study beside its leaderboard: soups, ensembles and refits, one row each.

A challenger is not a setting of the search (nothing ranks it with the trials); what the
leaderboard can show of it is its accuracies, its size, the registered version holding its model
and whether the promotion gate made that version the champion. Read through ``tl_bench.tracking``.
"""

from __future__ import annotations

import math

import pandas as pd

from tl_bench.tracking import KIND_REFIT, read_runs
from tl_bench.tracking.evaluation_record import KIND_ENSEMBLE, KIND_SOUP, PROMOTED
from tl_bench.tracking.model_registry import registered_versions

CHALLENGER_KINDS = (KIND_SOUP, KIND_ENSEMBLE, KIND_REFIT)
COLUMNS = ["kind", "run_id", "val_acc", "test_acc", "params_total", "version", "promoted"]


def _metric(runs: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` the runs logged, per run (NaN where none)."""
    out = pd.Series(math.nan, index=runs.index, dtype="float64")
    for name in reversed(names):
        column = f"metrics.{name}"
        if column in runs.columns:
            out = runs[column].astype("float64").where(runs[column].notna(), out)
    return out


def challenger_rows(tracking_uri: str, study: str, dataset: str) -> pd.DataFrame:
    """One row per finished soup, ensemble and refit run of ``study`` on ``dataset``, oldest first.

    Columns (``COLUMNS``): ``kind``; ``run_id``; ``val_acc`` (NaN for a refit: validation was trained
    on); ``test_acc`` (a refit's mean over its seeds); ``params_total`` (summed over an ensemble's
    members; NaN where the run does not record it); ``version`` (the registered version of its model,
    "" if none); ``promoted`` (True when the gate made it champion, False when it judged otherwise or
    never judged it, as for a refit).
    """
    frames = []
    for kind in CHALLENGER_KINDS:
        runs = read_runs(tracking_uri, kind=kind, study=study, dataset=dataset)
        if runs.empty:
            continue
        runs = runs[runs["dataset"] == dataset]  # a name MLflow could not filter on is filtered here
        frames.append(pd.DataFrame({
            "kind": kind, "run_id": runs["run_id"], "val_acc": _metric(runs, "val_acc"),
            "test_acc": _metric(runs, "test_acc_mean", "test_acc"), "params_total": _metric(runs, "params_total"),
            "start_time": runs["start_time"],
        }))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith(("acc", "total")) else "object")
                             for c in COLUMNS})
    rows = pd.concat(frames, ignore_index=True).sort_values("start_time", kind="stable").drop(columns="start_time")
    versions, promoted = [], []
    for run_id in rows["run_id"]:
        found = sorted(registered_versions(tracking_uri, run_id=str(run_id)), key=lambda v: int(v.version))
        versions.append(str(found[-1].version) if found else "")
        promoted.append(bool(found) and found[-1].tags.get(PROMOTED) == "true")
    rows["version"], rows["promoted"] = versions, promoted
    return rows[COLUMNS].reset_index(drop=True)


__all__ = ["CHALLENGER_KINDS", "COLUMNS", "challenger_rows"]
