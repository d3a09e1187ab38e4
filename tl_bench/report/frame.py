"""The runs a report starts from: trial runs, and the parameter importances of parent runs."""

from __future__ import annotations

import pandas as pd

from tl_bench.errors import OutputError, did_you_mean
from tl_bench.tracking import IMPORTANCE_PREFIX, IMPORTANCE_TRIALS, KIND_STUDY, KIND_TRIAL, read_runs


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


def check_scope(tracking_uri: str, *, study: str | None = None, dataset: str | None = None) -> None:
    """OutputError naming what the store holds when ``study`` (or ``dataset``, within ``study`` when
    given) is not a study (dataset) it has run.

    The names come from the parent runs, one per dataset study: a study that exists but has no
    finished trial yet passes, and an empty board says so instead.
    """
    if study is None and dataset is None:
        return
    parents = read_runs(tracking_uri, kind=KIND_STUDY, finished_only=False)
    studies = sorted(set(parents["study"].dropna()))
    if study is not None and study not in studies:
        raise OutputError(f"no study {study!r} in the store{did_you_mean(study, studies)}", _names(studies))
    if dataset is None:
        return
    scoped = parents[parents["study"] == study] if study is not None else parents
    datasets = sorted(set(scoped["dataset"].dropna()))
    if dataset not in datasets:
        where = f"study {study!r}" if study is not None else "the store"
        raise OutputError(f"no dataset {dataset!r} in {where}{did_you_mean(dataset, datasets)}", _names(datasets))


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none yet (no study has run on this store)"


def importance_frame(tracking_uri: str, *, study: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """Optuna parameter importances logged on parent runs as ``importance.<param>`` metrics.

    Columns ``study, dataset, param, importance, n_trials`` (the complete trials they rest on; NaN for runs
    written before it was recorded); when a dataset study has several parent runs (resumed studies), the
    latest one that logged importances wins.
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
        n_trials = run.get("metrics." + IMPORTANCE_TRIALS, float("nan"))
        rows.extend({"study": key[0], "dataset": key[1], "param": p, "importance": v, "n_trials": n_trials}
                    for p, v in values.items())
    frame = pd.DataFrame(rows, columns=["study", "dataset", "param", "importance", "n_trials"])
    return frame.sort_values(["study", "dataset", "importance"], ascending=[True, True, False], ignore_index=True)


__all__ = ["check_scope", "importance_frame", "trial_runs"]
