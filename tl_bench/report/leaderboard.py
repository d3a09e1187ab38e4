"""MLflow trial runs -> ranked leaderboard (one row per combination) -> CSV / table.

A *combination* is (dataset, backbone, weights, freeze_depth, neck, head). A
*setting* is one study's combination with all its other searched and fixed
parameters; its seeds are counted and averaged by ``tl_bench.report.seeds``.
Each combination is represented by its setting with the best ``val_acc_lcb``
(a one-sided 95 % lower bound on its mean validation accuracy, so settings with
unequal seed counts compare fairly); rows are ranked and put on Pareto fronts
by it too. Test accuracy is reported for the rows validation chose, and ranks
only when asked for (``metric="test_acc"``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tl_bench.errors import OutputError, did_you_mean
from tl_bench.report.columns import (
    COMBINATION,
    CSV_COLUMNS,
    DEFAULT_METRIC,
    EXTRA_COLUMNS,
    INT_COLUMNS,
    tidy_ints,
)
from tl_bench.report.frame import check_scope, trial_runs
from tl_bench.report.pareto import pareto_mask
from tl_bench.report.seeds import settings_table, trial_table
from tl_bench.tracking import locate_store


class Filters(BaseModel):
    """Which trial runs a board is made of; dashboards read them from YAML (``filters:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str | None = None
    dataset: str | None = None
    backbone: str | None = None  # fnmatch pattern
    weights: str | None = None
    freeze_depth: int | str | None = None
    min_epochs: int | None = Field(default=None, ge=1)


def leaderboard(
    tracking_uri: str | None = None,
    *,
    study: str | None = None,
    dataset: str | None = None,
    backbone: str | None = None,
    weights: str | None = None,
    freeze_depth: int | str | None = None,
    min_epochs: int | None = None,
    metric: str = DEFAULT_METRIC,
    ascending: bool = False,
    include_unfinished: bool = False,
    top: int | None = None,
) -> pd.DataFrame:
    """The ranked leaderboard of every trial run in the store (all pages of results).

    Args:
        tracking_uri: MLflow tracking URI; None resolves like the CLI (``$MLFLOW_TRACKING_URI``,
            then ``studies/runs/mlflow.db``).
        study, dataset: exact names (the spec's ``name``; a dataset of it).
        backbone: an ``fnmatch`` pattern, e.g. ``"test_*"``.
        weights, freeze_depth: exact values (``freeze_depth`` compares as text: ``2`` or ``"all"``).
        min_epochs: keep trials configured for at least this many epochs.
        metric: the metric that ranks (``val_acc_lcb``, or any logged metric), ``ascending`` for costs.
        include_unfinished: also average pruned, failed and running trials (column ``state`` added).
        top: keep the first ``top`` rows of each dataset.

    Returns:
        One row per combination with the columns of ``CSV_COLUMNS`` in that order, then
        ``EXTRA_COLUMNS``, then ``metric`` when it is not one of those. ``rank`` counts within
        each dataset, ties share the lowest rank (1, 2, 2, 4). A combination whose chosen
        setting lacks the ranking metric is kept, ranked last (all such rows share rank
        ``ranked + 1``). Averaged metrics are means over distinct finished seeds (see
        ``tl_bench.report.seeds``); ``run_id``, ``trial`` and ``seed`` name the seed run with
        the best validation accuracy. ``is_pareto``: on the front of ``val_acc_lcb`` (max)
        against ``train_time_s`` (min) within the dataset; ``is_pareto_params``: against
        ``params_trainable``.
    """
    # Built unchecked: from Python the filters were never validated (``min_epochs=0`` keeps every run).
    filters = Filters.model_construct(study=study, dataset=dataset, backbone=backbone, weights=weights,
                                      freeze_depth=freeze_depth, min_epochs=min_epochs)
    # Every run, whatever its state: pruned and failed seeds are counted even when not averaged.
    uri = locate_store(tracking_uri)
    runs = trial_runs(uri, study=study, dataset=dataset, include_unfinished=True)
    if runs.empty:  # a misspelled study or dataset is named as such, not shown as an empty board
        check_scope(uri, study=study, dataset=dataset)
    _check_values(runs, filters)
    return rank_runs(runs, filters, metric=metric, ascending=ascending, include_unfinished=include_unfinished,
                     top=top)


def _check_values(runs: pd.DataFrame, filters: Filters) -> None:
    """OutputError naming the values the runs hold when a backbone, weights or freeze depth filter
    matches no run at all (a typo rather than a combination without finished trials)."""
    if runs.empty:
        return
    for name, wanted in (("backbone", filters.backbone), ("weights", filters.weights),
                         ("freeze_depth", filters.freeze_depth)):
        column = f"params.{name}"
        if wanted is None or column not in runs.columns:
            continue
        present = sorted(set(runs[column].dropna().astype(str)))
        matches = fnmatchcase if name == "backbone" else str.__eq__
        if not any(matches(value, str(wanted)) for value in present):
            has = "'s backbone matches" if name == "backbone" else f" has {name}"
            what = f"no trial run{has} {str(wanted)!r}{did_you_mean(wanted, present)}"
            raise OutputError(what, ", ".join(present))


def rank_runs(
    runs: pd.DataFrame,
    filters: Filters = Filters(),
    *,
    metric: str = DEFAULT_METRIC,
    ascending: bool = False,
    include_unfinished: bool = False,
    top: int | None = None,
) -> pd.DataFrame:
    """``leaderboard`` on a frame of trial runs already read (``tl_bench.report.trial_runs``, with
    ``include_unfinished=True`` so that pruned and failed seeds are counted).

    ``filters.study`` and ``filters.dataset`` are the reader's: ``trial_runs`` applies them.
    """
    trials = trial_table(runs, metric)
    if filters.backbone is not None:
        trials = trials[[fnmatchcase(str(b), filters.backbone) for b in trials["backbone"]]]
    if filters.weights is not None:
        trials = trials[trials["weights"] == filters.weights]
    if filters.freeze_depth is not None:
        trials = trials[trials["freeze_depth"] == str(filters.freeze_depth)]
    if filters.min_epochs is not None:
        trials = trials[trials["epochs"] >= filters.min_epochs]
    board = _best_settings(settings_table(trials, metric, include_unfinished=include_unfinished))
    board["rank"] = _rank(board, metric, ascending)
    board["is_pareto"] = _pareto(board, "train_time_s")
    board["is_pareto_params"] = _pareto(board, "params_trainable")
    board = board.sort_values(["dataset", "rank", *COMBINATION[1:]], kind="stable", ignore_index=True)
    if top is not None:
        board = board.groupby("dataset", sort=False, dropna=False).head(top).reset_index(drop=True)
    columns = [*CSV_COLUMNS, *EXTRA_COLUMNS]
    columns += [metric] if metric not in columns else []
    columns += ["state", "pruned_epoch"] if include_unfinished else []
    return tidy_ints(board.reindex(columns=columns), INT_COLUMNS)


def _best_settings(settings: pd.DataFrame) -> pd.DataFrame:
    # Per combination, the setting with the best lower bound on validation accuracy (test never
    # chooses); then more seeds, then the higher mean, then the earlier trial.
    order = ["val_acc_lcb", "n_seeds", "val_acc", "trial"]
    settings = settings.sort_values(order, ascending=[False, False, False, True], na_position="last", kind="stable")
    return settings.drop_duplicates(list(COMBINATION)).reset_index(drop=True)


def _rank(board: pd.DataFrame, metric: str, ascending: bool) -> pd.Series:
    score = board[metric]
    rank = score.groupby(board["dataset"], dropna=False).rank(method="min", ascending=ascending)
    ranked = score.notna().groupby(board["dataset"], dropna=False).transform("sum")
    return rank.fillna(ranked + 1)


def _pareto(board: pd.DataFrame, cost: str) -> pd.Series:
    mask = pd.Series(False, index=board.index)
    for _, rows in board.groupby("dataset", sort=False, dropna=False):
        mask[rows.index] = pareto_mask(rows["val_acc_lcb"].to_numpy(), rows[cost].to_numpy())
    return mask


def across_datasets(
    source: pd.DataFrame | str | None = None,
    *,
    metric: str = DEFAULT_METRIC,
    ascending: bool = False,
    top: int | None = None,
    **filters: object,
) -> pd.DataFrame:
    """VTAB-style summary over datasets, from a ``leaderboard`` frame or the leaderboard's arguments.

    Only combinations (backbone, weights, freeze_depth, neck, head) present with the metric on
    every dataset of ``source`` count. For each: ``mean_<metric>``, ``mean_rank`` (ranked
    among those common combinations on each dataset, ties share the lowest rank), ``wins``
    (datasets where it ranks first, ties included), the mean test accuracy of the rows
    validation chose, mean training time and trainable parameters, and one
    ``<metric>[<dataset>]`` column per dataset. Rows are ranked by the mean metric, then by
    mean rank.
    """
    board = source if isinstance(source, pd.DataFrame) else leaderboard(source, metric=metric, ascending=ascending,
                                                                          **filters)  # type: ignore[arg-type]
    if metric not in board.columns:
        raise OutputError(f"the leaderboard has no column {metric!r}", ", ".join(board.columns))
    combo = list(COMBINATION[1:])
    board = board[board[metric].notna()]
    datasets = sorted(board["dataset"].unique())
    counts = board.groupby(combo, sort=False)["dataset"].transform("nunique")
    common = board[counts == len(datasets)].copy()
    common["_rank"] = common.groupby("dataset")[metric].rank(method="min", ascending=ascending)
    grouped = common.groupby(combo, sort=False)
    out = grouped[metric].mean().rename(f"mean_{metric}").to_frame()
    out["mean_rank"] = grouped["_rank"].mean()
    out["wins"] = grouped["_rank"].agg(lambda r: int((r == 1).sum()))
    out["n_datasets"] = grouped["dataset"].nunique()
    for column in ("test_acc", "train_time_s", "params_trainable"):
        if column != metric:
            out[f"mean_{column}"] = grouped[column].mean()
    wide = common.pivot_table(index=combo, columns="dataset", values=metric, aggfunc="first")
    out = out.join(wide.rename(columns=lambda d: f"{metric}[{d}]")).reset_index()
    out = out.sort_values([f"mean_{metric}", "mean_rank", *combo], ascending=[ascending, True, *[True] * len(combo)],
                          kind="stable", ignore_index=True)
    out.insert(0, "rank", out[f"mean_{metric}"].rank(method="min", ascending=ascending))
    out = tidy_ints(out, ("rank", "wins", "n_datasets"))
    return out.head(top).reset_index(drop=True) if top is not None else out


__all__ = ["Filters", "across_datasets", "leaderboard", "rank_runs"]
