"""The readable view of a leaderboard: which columns a person sees, under which headers, and how
each number is written. The terminal table and the Markdown board both show this view; CSV and
JSON keep every column and the raw values. Markdown names columns as CSV and JSON do; the
terminal table uses short labels and keeps, in ``PRIORITY`` order, the columns that fit its width.

Numbers follow one rule per kind of column, whatever the table:

- counts (parameters, FLOPs, seeds, wins): thousands separators, ``94,331`` (a mean that is not
  whole keeps one decimal, ``1,780.5``);
- accuracies: four decimals, ``0.9123``;
- times in seconds: two decimals with separators, ``1,234.57``;
- identifiers (rank, trial, seed): as they are, ``12``;
- rates (learning rate, weight decay): three significant digits, in scientific form below 0.01
  (``3.00e-04``, ``1.00e-03``, ``0.05``), so every row of a column reads the same way;
- anything else (memory, throughput): four significant digits, separators from a thousand up
  (``123.5``, ``5,432``).
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

import pandas as pd

from tl_bench.report.columns import INT_COLUMNS
from tl_bench.report.settings import outcome_text

# Columns shown, in order, when present and not constant noise.
SHOWN = (
    "rank", "dataset", "split", "backbone", "weights", "freeze_depth", "adaptation", "neck", "head", "val_acc_lcb",
    "val_acc", "test_acc", "gain_vs_scratch",
    "mean_val_acc_lcb", "mean_val_acc", "mean_test_acc", "mean_rank", "wins", "n_datasets", "params_trainable",
    "mean_params_trainable", "adapter_mb", "latency_ms", "train_time_s", "mean_train_time_s", "epochs", "lr", "n_seeds",
    "trial", "state", "feasible",
)
# What a narrow terminal keeps first (then the rest of SHOWN): what the row is, with the score it is
# ranked by before neck and head (a board without its score says nothing), then accuracies and costs.
PRIORITY = (
    "rank", "dataset", "split", "backbone", "weights", "freeze_depth", "neck", "head", "adaptation", "val_acc_lcb",
    "mean_val_acc_lcb", "val_acc", "mean_val_acc", "test_acc", "mean_test_acc", "mean_rank", "wins", "is_pareto",
    "train_time_s", "mean_train_time_s", "params_trainable", "mean_params_trainable", "n_seeds", "latency_ms",
)
# Short labels keep the table inside a terminal; the files (Markdown, CSV, JSON) keep the full names.
HEADERS = {"freeze_depth": "freeze", "params_trainable": "trainable", "train_time_s": "time_s",
           "mean_params_trainable": "mean_trainable", "mean_train_time_s": "mean_time_s", "n_seeds": "seeds",
           "val_acc_lcb": "val_lcb", "mean_val_acc_lcb": "mean_val_lcb", "gain_vs_scratch": "gain",
           "adaptation": "adapt", "latency_ms": "lat_ms", "is_pareto": "pareto", "mean_test_acc": "mean_test",
           "mean_val_acc": "mean_val", "n_datasets": "datasets", "adapter_mb": "adapt_mb"}
MISSING = "-"
_IDENTIFIERS = frozenset({"rank", "trial", "seed"})
_RATES = frozenset({"lr", "weight_decay", "min_lr", "warmup_lr"})
_PER_DATASET = re.compile(r"\[.*\]$")  # ``val_acc_lcb[digits]`` of across_datasets


def shown_columns(frame: pd.DataFrame, *, all_columns: bool = False, metric: str | None = None) -> list[str]:
    """The columns of the readable view (every column with ``all_columns``); ``is_pareto`` is
    drawn as its own mark column, not listed here, unless ``all_columns``. The ranking ``metric``
    is shown after the head when SHOWN does not list it."""
    if all_columns:
        return list(frame.columns)
    columns = [c for c in SHOWN if c in frame.columns and not _constant_noise(frame, c)]
    if metric and metric in frame.columns and metric not in SHOWN and not _PER_DATASET.search(metric):
        columns.insert(columns.index("head") + 1 if "head" in columns else len(columns), metric)
    return columns + [c for c in frame.columns if _PER_DATASET.search(c) and c not in columns]


def view(
    frame: pd.DataFrame, *, all_columns: bool = False, metric: str | None = None, short: bool = True
) -> tuple[list[str], list[list[str]], list[bool]]:
    """The readable view as text: headers (short labels, or with ``short=False`` the CSV's names),
    rows of cells, and which columns hold numbers (set right). A ``pareto`` mark column (``*`` on
    the front) closes it unless ``all_columns``."""
    columns = view_columns(frame, all_columns=all_columns, metric=metric)
    headers = [header(c, all_columns=all_columns or not short) for c in columns]
    numeric = [c != "is_pareto" and pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool
               for c in columns]
    rows = []
    for _, row in frame.iterrows():
        rows.append([cell(row[c], c, row, mark=not all_columns) for c in columns])
    return headers, rows, numeric


def view_columns(frame: pd.DataFrame, *, all_columns: bool = False, metric: str | None = None) -> list[str]:
    """The columns ``view`` shows, in order: ``shown_columns`` and, unless ``all_columns``, the Pareto mark."""
    columns = shown_columns(frame, all_columns=all_columns, metric=metric)
    return columns + (["is_pareto"] if not all_columns and "is_pareto" in frame.columns else [])


def priority(columns: list[str], metric: str | None = None) -> list[int]:
    """Positions of ``columns`` in the order a narrow table keeps them: ``PRIORITY``, with the score
    before the neck (the ranking ``metric``, or the first accuracy shown when its column is not) and
    per-dataset columns after ``wins``, then the rest as shown."""
    scores = [metric, "val_acc_lcb", "mean_val_acc_lcb", "val_acc", "mean_val_acc"]
    score = next((c for c in scores if c and c in columns), None)
    order = [c for c in PRIORITY if c != score]
    if score:
        order.insert(order.index("neck"), score)
    at_wins = order.index("wins") + 1
    order[at_wins:at_wins] = [c for c in columns if _PER_DATASET.search(c)]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(range(len(columns)), key=lambda i: (rank.get(columns[i], len(rank)), i))


def header(column: str, *, all_columns: bool = False) -> str:
    """A column's label: its own name with ``all_columns``, else its short label (``val_lcb[digits]``
    for the per-dataset ``val_acc_lcb[digits]``)."""
    if all_columns:
        return column
    per_dataset = _PER_DATASET.search(column)
    if per_dataset:
        base = column[: per_dataset.start()]
        return HEADERS.get(base, base) + per_dataset.group()
    return HEADERS.get(column, column)


def cell(value: Any, column: str, row: pd.Series, *, mark: bool = False) -> str:
    """One cell of the readable view: the spread over seeds beside a mean accuracy, finished
    over started seeds, why a trial has no accuracy, and every number written by ``format_number``;
    with ``mark``, ``is_pareto`` as ``*`` on the front."""
    if mark and column == "is_pareto":
        return "*" if value is True or value == 1 else ""
    if _missing(value):
        if column in ("test_acc", "val_acc") and row.get("state") in ("PRUNED", "FAIL", "RUNNING"):
            return outcome_text(row.get("state"), row.get("pruned_epoch"))  # why there is no accuracy
        return MISSING
    n_seeds = row.get("n_seeds", 1)
    if column in ("test_acc", "val_acc") and not _missing(n_seeds) and n_seeds > 1:
        spread = row.get(f"{column}_std")
        return format_number(value, column) + ("" if _missing(spread) else f"±{spread:.3f}")
    started = row.get("n_seeds_started", value)
    if column == "n_seeds" and not _missing(started) and started > value:
        return f"{format_number(value, column)}/{format_number(started, column)}"  # some pruned, failed or running
    return format_number(value, column)


def format_number(value: Any, column: str) -> str:
    """``value`` as the readable view writes numbers of ``column`` (see the module's rules)."""
    if _missing(value):
        return MISSING
    if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real):
        return str(value)
    kind = column_kind(column)
    number = float(value)
    whole = number == round(number)
    if kind == "identifier":
        return f"{number:.0f}" if whole else f"{number:.4g}"
    if kind == "count":
        return f"{number:,.0f}" if whole else f"{number:,.1f}"
    if kind == "accuracy":
        return f"{number:.4f}"
    if kind == "time":
        return f"{number:,.2f}"
    if kind == "rate":
        return f"{number:.2e}" if 0 < abs(number) < 0.01 else f"{number:.3g}"
    return f"{number:,.0f}" if abs(number) >= 1000 else f"{number:.4g}"


def column_kind(column: str) -> str:
    """``identifier``, ``count``, ``accuracy``, ``time``, ``rate`` or ``other``: how a column's numbers are written."""
    base = _PER_DATASET.sub("", column)
    base = base.removeprefix("mean_") if base != "mean_rank" else "mean_rank"
    if base in _IDENTIFIERS:
        return "identifier"
    if base in INT_COLUMNS or base.startswith(("params_", "flops_", "n_")) or base in ("wins", "mean_rank"):
        return "count"
    if "acc" in base or base == "gain_vs_scratch":
        return "accuracy"
    if base.endswith("_s"):
        return "time"
    if base in _RATES or base.endswith("_lr"):
        return "rate"
    return "other"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _constant_noise(frame: pd.DataFrame, column: str) -> bool:
    """A column that says nothing in this table: one dataset, every row a single complete seed,
    or a lower bound equal to the mean everywhere (no repeated seeds)."""
    if column in ("dataset", "split"):
        return frame[column].nunique(dropna=False) == 1
    if column == "feasible":
        return bool(frame[column].fillna(True).astype(bool).all())
    if column == "latency_ms":
        return bool(frame[column].fillna(0).eq(0).all())  # runs from before it was measured
    if column in ("adaptation", "adapter_mb"):  # said once no row adapts the frozen stages
        return "adaptation" not in frame.columns or bool((frame["adaptation"].fillna("full") == "full").all())
    if column == "gain_vs_scratch":
        return bool(frame[column].isna().all())
    if column == "n_seeds":
        started = frame["n_seeds_started"] if "n_seeds_started" in frame.columns else frame[column]
        return bool((frame[column].fillna(1) <= 1).all() and (started.fillna(1) <= 1).all())
    if column in ("val_acc_lcb", "mean_val_acc_lcb"):
        mean = frame[column.replace("_lcb", "")] if column.replace("_lcb", "") in frame.columns else None
        return mean is not None and bool(((frame[column] - mean).abs().fillna(0) < 5e-5).all())
    return False


__all__ = ["HEADERS", "MISSING", "PRIORITY", "SHOWN", "cell", "column_kind", "format_number", "header", "priority",
           "shown_columns", "view", "view_columns"]
