"""MLflow trial runs -> ranked leaderboard (one row per combination) -> CSV / table.

A *combination* is (dataset, backbone, weights, freeze_depth, neck, head). A
*setting* is one study's combination with all its other searched and fixed
parameters; its seeds are counted and averaged by ``tl_bench.report.settings``.
Each combination is represented by its setting with the best ``val_acc_lcb``
(a one-sided 95 % lower bound on its mean validation accuracy, so settings with
unequal seed counts compare fairly); rows are ranked and put on Pareto fronts
by it too, within one dataset split (``split``: accuracies measured on other
images do not compare). The rule is ``tl_bench.ranking``'s, which also chooses
the champion: the first row of a study's board is its registered model. A
row's bound is computed from its own study and split, so filters never change
it. Test accuracy is reported for the rows validation chose, and ranks only
when asked for (``metric="test_acc"``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tl_bench.config import weights_label
from tl_bench.errors import OutputError, did_you_mean
from tl_bench.ranking import order_settings
from tl_bench.report.columns import (
    COMBINATION,
    CSV_COLUMNS,
    DEFAULT_METRIC,
    EXTRA_COLUMNS,
    INT_COLUMNS,
    tidy_ints,
)
from tl_bench.report.directions import MIN, metric_direction, resolve_ascending
from tl_bench.report.frame import check_scope, trial_runs
from tl_bench.report.pareto import pareto_mask
from tl_bench.report.settings import settings_table, trial_table
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
    feasible_only: bool = False  # only settings that met the study's constraints


def leaderboard(
    tracking_uri: str | None = None,
    *,
    study: str | None = None,
    dataset: str | None = None,
    backbone: str | None = None,
    weights: str | None = None,
    freeze_depth: int | str | None = None,
    min_epochs: int | None = None,
    feasible_only: bool = False,
    metric: str = DEFAULT_METRIC,
    ascending: bool | None = None,
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
        feasible_only: keep the settings that met the study's ``constraints`` (every seed did).
        metric: the metric that ranks (``val_acc_lcb``, or any logged metric).
        ascending: lower is better; None takes the metric's direction (``report.directions``:
            accuracies descending, times, sizes, memory and latency ascending), an OutputError for a
            metric of unknown direction.
        include_unfinished: also average pruned, failed and running trials (column ``state`` added).
        top: keep the first ``top`` rows of each dataset.

    Returns:
        One row per combination with the columns of ``CSV_COLUMNS`` in that order, then
        ``EXTRA_COLUMNS``, then ``metric`` when it is not one of those. ``rank`` counts within
        each dataset, ties share the lowest rank (1, 2, 2, 4). A combination whose chosen
        setting lacks the ranking metric is kept, ranked last (all such rows share rank
        ``ranked + 1``). Averaged metrics are means over distinct finished seeds (see
        ``tl_bench.report.settings``); ``run_id``, ``trial`` and ``seed`` name the seed run with
        the best validation accuracy. ``is_pareto``: on the front of ``val_acc_lcb`` (max)
        against ``train_time_s`` (min) within the dataset; ``is_pareto_params``: against
        ``params_trainable``. Settings that missed the study's ``constraints`` (``feasible``
        False) rank after every feasible one and are on no front.
    """
    # Built unchecked: from Python the filters were never validated (``min_epochs=0`` keeps every run).
    # A checkpoint file's runs carry its short label: the file's path finds them too.
    weights = weights_label(weights) if weights is not None else None
    filters = Filters.model_construct(study=study, dataset=dataset, backbone=backbone, weights=weights,
                                      freeze_depth=freeze_depth, min_epochs=min_epochs, feasible_only=feasible_only)
    # Every run, whatever its state: pruned and failed seeds are counted even when not averaged.
    uri = locate_store(tracking_uri)
    runs = trial_runs(uri, study=study, dataset=dataset, include_unfinished=True)
    if runs.empty:  # a misspelled study or dataset is named as such, not shown as an empty board
        check_scope(uri, study=study, dataset=dataset)
    if ascending is None and metric_direction(metric) is None and f"metrics.{metric}" not in runs.columns:
        ascending = False  # a metric no run has: ``trial_table`` names it, with the metrics there are
    ascending = resolve_ascending(metric, ascending=ascending)
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
    ascending: bool | None = None,
    include_unfinished: bool = False,
    top: int | None = None,
) -> pd.DataFrame:
    """``leaderboard`` on a frame of trial runs already read (``tl_bench.report.trial_runs``, with
    ``include_unfinished=True`` so that pruned and failed seeds are counted).

    ``filters.study`` and ``filters.dataset`` are the reader's: ``trial_runs`` applies them.
    ``ascending`` None: the metric's known direction, descending when it has none.
    """
    ascending = metric_direction(metric) == MIN if ascending is None else ascending
    # Settings first, filters after: a row's bound borrows the spread of its whole study and split.
    settings = settings_table(trial_table(runs, metric), metric, include_unfinished=include_unfinished)
    board = _best_settings(_filtered(settings, filters))
    board["rank"] = _rank(board, metric, ascending)
    board["is_pareto"] = _pareto(board, "train_time_s")
    board["is_pareto_params"] = _pareto(board, "params_trainable")
    board = add_scratch_gain(board)
    first = (("dataset", True), ("split", True), ("rank", True))
    board = order_settings(board, first).reset_index(drop=True)
    if top is not None:
        board = board.groupby(["dataset", "split"], sort=False, dropna=False).head(top).reset_index(drop=True)
    columns = [*CSV_COLUMNS, *EXTRA_COLUMNS]
    columns += [metric] if metric not in columns else []
    columns += ["state", "pruned_epoch"] if include_unfinished else []
    return tidy_ints(board.reindex(columns=columns), INT_COLUMNS)


def _filtered(settings: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    if filters.backbone is not None:
        settings = settings[[fnmatchcase(str(b), filters.backbone) for b in settings["backbone"]]]
    if filters.weights is not None:
        settings = settings[settings["weights"] == filters.weights]
    if filters.freeze_depth is not None:
        settings = settings[settings["freeze_depth"] == str(filters.freeze_depth)]
    if filters.min_epochs is not None:
        settings = settings[settings["epochs"] >= filters.min_epochs]
    if filters.feasible_only and "feasible" in settings.columns:
        settings = settings[settings["feasible"].fillna(True).astype(bool)]
    return settings


def _best_settings(settings: pd.DataFrame) -> pd.DataFrame:
    # Per combination, the first feasible setting by the ranking rule (test never chooses).
    ordered = order_settings(settings)
    ordered = ordered.iloc[(~_feasible(ordered)).to_numpy().argsort(kind="stable")]
    return ordered.drop_duplicates(list(COMBINATION)).reset_index(drop=True)


def _board_groups(board: pd.DataFrame) -> list[pd.Series]:
    return [board["dataset"], board["split"]]


def _rank(board: pd.DataFrame, metric: str, ascending: bool) -> pd.Series:
    score = board[metric].where(_feasible(board))  # an infeasible setting ranks after every feasible one
    rank = score.groupby(_board_groups(board), dropna=False).rank(method="min", ascending=ascending)
    ranked = score.notna().groupby(_board_groups(board), dropna=False).transform("sum")
    return rank.fillna(ranked + 1)


def _pareto(board: pd.DataFrame, cost: str) -> pd.Series:
    mask = pd.Series(False, index=board.index)
    for _, rows in board[_feasible(board)].groupby(["dataset", "split"], sort=False, dropna=False):
        mask[rows.index] = pareto_mask(rows["val_acc_lcb"].to_numpy(), rows[cost].to_numpy())
    return mask


def _feasible(board: pd.DataFrame) -> pd.Series:
    if "feasible" not in board.columns:
        return pd.Series(True, index=board.index)
    return board["feasible"].fillna(True).astype(bool)


def add_scratch_gain(board: pd.DataFrame) -> pd.DataFrame:
    """``scratch_ref`` and ``gain_vs_scratch`` on each pretrained row: the first ``scratch`` row of
    the same backbone, study and split over the whole space searched (any freeze depth, neck and
    head), named, and the row's test accuracy above that row's."""
    board = board.copy()
    refs: list[str | None] = [None] * len(board)
    gains = [float("nan")] * len(board)
    scratch = order_settings(board[board["weights"] == "scratch"])
    best = scratch.drop_duplicates(["study", "dataset", "split", "backbone"]).set_index(
        ["study", "dataset", "split", "backbone"])
    for position, (_, row) in enumerate(board.iterrows()):
        key = (row["study"], row["dataset"], row["split"], row["backbone"])
        if row["weights"] == "scratch" or key not in best.index:
            continue
        ref = best.loc[key]
        refs[position] = f"freeze {ref['freeze_depth']}, {ref['neck']}/{ref['head']}, trial {ref['trial']:g}"
        gains[position] = row["test_acc"] - ref["test_acc"]
    # text where any row has a reference; all missing reads back from CSV as float, so it is written as one
    board["scratch_ref"] = pd.Series(refs, index=board.index, dtype="str" if any(refs) else "float64")
    board["gain_vs_scratch"] = gains
    return board


def across_datasets(
    source: pd.DataFrame | str | None = None,
    *,
    metric: str = DEFAULT_METRIC,
    ascending: bool | None = None,
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
    ascending = resolve_ascending(metric, ascending=ascending)
    if metric not in board.columns:
        raise OutputError(f"the leaderboard has no column {metric!r}", ", ".join(board.columns))
    combo = list(COMBINATION[2:])
    board = _one_split_each(board[board[metric].notna()])
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


def _one_split_each(board: pd.DataFrame) -> pd.DataFrame:
    # A dataset searched on several splits counts on one: the split with the most finished seeds (then
    # the first by name), so no combination is averaged over accuracies measured on different images.
    sizes = board.groupby(["dataset", "split"], dropna=False)["n_seeds"].sum().reset_index(name="_n")
    chosen = sizes.sort_values(["dataset", "_n", "split"], ascending=[True, False, True]).drop_duplicates("dataset")
    return board.merge(chosen[["dataset", "split"]], on=["dataset", "split"])


__all__ = ["Filters", "across_datasets", "add_scratch_gain", "leaderboard", "rank_runs"]
