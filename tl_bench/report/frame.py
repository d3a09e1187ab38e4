"""The runs a report starts from: trial runs, and the parameter importances of parent runs."""

from __future__ import annotations

import pandas as pd

from tl_bench.tracking import IMPORTANCE_PREFIX, KIND_STUDY, KIND_TRIAL, read_runs


def trial_runs(
    tracking_uri: str,
    *,
    study: str | None = None,
    dataset: str | None = None,
    include_unfinished: bool = False,
) -> pd.DataFrame:
    """Trial runs as a frame (``tl_bench.tracking.read_runs``); finished ones unless ``include_unfinished``."""
    frame = read_runs(tracking_uri, kind=KIND_TRIAL, study=study, dataset=dataset, finished_only=not include_unfinished)
    if study is not None:
        frame = frame[frame["study"] == study]
    if dataset is not None:
        frame = frame[frame["dataset"] == dataset]
    return frame.reset_index(drop=True)


def importance_frame(tracking_uri: str, *, study: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """Optuna parameter importances logged on parent runs as ``importance.<param>`` metrics.

    Columns ``study, dataset, param, importance``; when a dataset study has several
    parent runs (resumed studies), the latest one that logged importances wins.
    """
    runs = read_runs(tracking_uri, kind=KIND_STUDY, study=study, dataset=dataset, finished_only=False)
    prefix = "metrics." + IMPORTANCE_PREFIX
    columns = [c for c in runs.columns if c.startswith(prefix)]
    rows = []
    seen: set[tuple[str | None, str | None]] = set()
    for _, run in runs.sort_values("start_time", ascending=False, kind="stable", na_position="last").iterrows():
        key = (run["study"], run["dataset"])
        values = {c[len(prefix):]: run[c] for c in columns if pd.notna(run[c])}
        if key in seen or not values:
            continue
        if (study is not None and key[0] != study) or (dataset is not None and key[1] != dataset):
            continue
        seen.add(key)
        rows.extend({"study": key[0], "dataset": key[1], "param": p, "importance": v} for p, v in values.items())
    frame = pd.DataFrame(rows, columns=["study", "dataset", "param", "importance"])
    return frame.sort_values(["study", "dataset", "importance"], ascending=[True, True, False], ignore_index=True)


__all__ = ["importance_frame", "trial_runs"]
