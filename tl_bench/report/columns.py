"""The leaderboard's columns: a stable CSV schema (order fixed, documented in README)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

# Fixed order; new columns only ever go at the end.
CSV_COLUMNS: tuple[str, ...] = (
    "rank", "dataset", "backbone", "weights", "freeze_depth", "n_stages", "neck", "head",
    "test_acc", "val_acc", "params_total", "params_trainable", "flops_fwd_per_image",
    "train_time_s", "train_throughput_ips", "peak_mem_mb", "epochs", "lr", "batch_size",
    "seed", "study", "trial", "run_id", "is_pareto",
)
# After the fixed columns, in this order: seed spread and the second Pareto front, then the score
# that chooses, ranks and draws the fronts, the seed counts, the cached backbone pass in train_time_s,
# the dataset split the row was measured on, the best scratch row of the same backbone with the
# test accuracy gained over it, what trains inside the frozen stages with what a task stores, the
# measured serving cost, and whether the setting met the study's constraints.
EXTRA_COLUMNS: tuple[str, ...] = (
    "n_seeds", "test_acc_std", "val_acc_std", "is_pareto_params",
    "val_acc_lcb", "n_seeds_started", "n_seeds_pruned", "n_seeds_failed", "seeds_complete", "feature_time_s",
    "split", "scratch_ref", "gain_vs_scratch", "adaptation", "adapter_mb", "latency_ms", "infer_ips", "feasible",
)
# One row each; a dataset's split is part of its identity: accuracies on other splits do not compare.
COMBINATION: tuple[str, ...] = ("dataset", "split", "backbone", "weights", "freeze_depth", "adaptation", "neck", "head")
# What ranks by default, chooses each combination's setting and draws the Pareto fronts.
DEFAULT_METRIC = "val_acc_lcb"
# Metrics averaged over the seeds of a setting.
MEAN_COLUMNS: tuple[str, ...] = (
    "test_acc", "val_acc", "params_total", "params_trainable", "flops_fwd_per_image",
    "train_time_s", "train_throughput_ips", "peak_mem_mb", "feature_time_s", "adapter_mb", "latency_ms", "infer_ips",
)
INT_COLUMNS: tuple[str, ...] = (
    "rank", "n_stages", "params_total", "params_trainable", "epochs", "batch_size", "seed", "trial", "n_seeds",
    "n_seeds_started", "n_seeds_pruned", "n_seeds_failed",
)
# Params that say how a trial ran rather than what it was: runs differing in them are repeats.
RUN_ONLY_PARAMS = frozenset({"seed", "device", "use_cache", "boundary_cache_mb", "data_root", "download",
                             "latency_device", "latency_threads", "latency_batch_sizes"})
# Text columns whose values may look numeric (freeze depth "2"); read_csv pins them to text.
TEXT_COLUMNS: tuple[str, ...] = (
    "dataset", "split", "backbone", "weights", "freeze_depth", "adaptation", "neck", "head", "study", "run_id",
)


def tidy_ints(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Whole-number columns as int64 when every value is a whole number, float64 otherwise
    (a missing value, or a mean over seeds that is not whole).

    That is exactly what ``pandas.read_csv`` infers from the written file, so a
    board loads back unchanged.
    """
    frame = frame.copy()
    for column in columns:
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        whole = len(values) > 0 and values.notna().all() and bool((values == values.round()).all())
        frame[column] = values.astype("int64") if whole else values
    return frame


__all__ = [
    "COMBINATION",
    "CSV_COLUMNS",
    "DEFAULT_METRIC",
    "EXTRA_COLUMNS",
    "INT_COLUMNS",
    "MEAN_COLUMNS",
    "RUN_ONLY_PARAMS",
    "TEXT_COLUMNS",
    "tidy_ints",
]
