"""Leaderboard frames out: CSV, Markdown, JSON files and the terminal table."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tl_bench.errors import OutputError
from tl_bench.report.columns import TEXT_COLUMNS
from tl_bench.report.seeds import outcome_text

FORMATS = ("csv", "md", "json")
# Terminal columns, in order, when present; the file keeps every column.
_SHOWN = (
    "rank", "dataset", "backbone", "weights", "freeze_depth", "neck", "head", "val_acc_lcb", "val_acc", "test_acc",
    "mean_val_acc_lcb", "mean_val_acc", "mean_test_acc", "mean_rank", "wins", "n_datasets", "params_trainable",
    "mean_params_trainable", "train_time_s", "mean_train_time_s", "epochs", "lr", "n_seeds", "trial", "state",
)


def format_board(frame: pd.DataFrame, fmt: str = "csv") -> str:
    """The frame as text: ``csv`` (RFC 4180 quoting, UTF-8), ``md`` (a Markdown table) or ``json`` (records)."""
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return frame.to_json(orient="records", force_ascii=False, indent=1) + "\n"
    if fmt == "md":
        return _markdown(frame)
    raise OutputError(f"unknown leaderboard format {fmt!r}", ", ".join(FORMATS))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    # A pipe would end the cell; a newline the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_board(frame: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``frame`` to ``path`` as ``fmt`` (default: from the suffix, ``.csv`` otherwise)."""
    path = Path(path)
    fmt = fmt or {".md": "md", ".json": "json"}.get(path.suffix.lower(), "csv")
    return write_output(path, format_board(frame, fmt), "the leaderboard")


def write_output(path: str | Path, text: str, what: str) -> Path:
    """Write ``text`` to ``path`` (``what`` names it in the error line).

    A missing folder is created only below the working folder (``--out reports/x.html``);
    anywhere else a mistyped path fails instead of leaving new folders behind.
    """
    path = Path(path)
    accepted = "a file path in an existing, writable folder, or in a new folder below the working folder"
    folder = path.absolute().parent
    if not folder.exists():
        if not folder.resolve().is_relative_to(Path.cwd().resolve()):
            raise OutputError(f"cannot write {what} to {path}: folder {folder} does not exist", accepted)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot write {what} to {path}: {err.strerror or err}", accepted) from err
    try:
        path.write_text(text, encoding="utf-8", newline="")
    except OSError as err:
        raise OutputError(f"cannot write {what} to {path}: {err.strerror or err}", accepted) from err
    return path


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the leaderboard as CSV (fixed column order, quoted where needed, UTF-8)."""
    return write_board(frame, path, "csv")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Load a written leaderboard with the name columns kept as text.

    Plain ``pandas.read_csv`` gives the same frame back too, except where every
    freeze depth (or a name) looks like a number: then pandas makes it numeric.
    """
    with_header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, dtype={c: "str" for c in TEXT_COLUMNS if c in with_header})


def _show(value: Any, column: str, row: pd.Series) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if column in ("test_acc", "val_acc") and row.get("state") in ("PRUNED", "FAIL", "RUNNING"):
            return outcome_text(row.get("state"), row.get("pruned_epoch"))  # why there is no accuracy
        return "-"
    if column in ("test_acc", "val_acc") and row.get("n_seeds", 1) and row.get("n_seeds", 1) > 1:
        spread = row.get(f"{column}_std")
        return f"{value:.4f}±{spread:.3f}" if spread == spread else f"{value:.4f}"
    if column == "n_seeds" and row.get("n_seeds_started", value) > value:
        return f"{value}/{row['n_seeds_started']}"  # started seeds that were pruned, failed or still run
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(value) >= 1e4:
        return f"{value:,}"
    return str(value)


# Short headers keep the table inside a terminal; the CSV keeps the full names.
_HEADERS = {"freeze_depth": "freeze", "params_trainable": "trainable", "train_time_s": "time_s",
            "mean_params_trainable": "mean_trainable", "mean_train_time_s": "mean_time_s", "n_seeds": "seeds",
            "val_acc_lcb": "val_lcb", "mean_val_acc_lcb": "mean_val_lcb"}


def _constant_noise(frame: pd.DataFrame, column: str) -> bool:
    """A column that says nothing in this table: one dataset, every row a single complete seed,
    or a lower bound equal to the mean everywhere (no repeated seeds)."""
    if column == "dataset":
        return frame[column].nunique(dropna=False) == 1
    if column == "n_seeds":
        started = frame["n_seeds_started"] if "n_seeds_started" in frame.columns else frame[column]
        return bool((frame[column].fillna(1) <= 1).all() and (started.fillna(1) <= 1).all())
    if column in ("val_acc_lcb", "mean_val_acc_lcb"):
        mean = frame[column.replace("_lcb", "")] if column.replace("_lcb", "") in frame.columns else None
        return mean is not None and bool(((frame[column] - mean).abs().fillna(0) < 5e-5).all())
    return False


def print_leaderboard(frame: pd.DataFrame, *, console: Console | None = None, title: str | None = None) -> None:
    """A readable subset of the columns as a rich table (``*`` marks the Pareto front)."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # piped or logged: keep the table readable
    if frame.empty:
        console.print(Text(f"{title + ': ' if title else ''}no finished trials match"))
        return
    columns = [c for c in _SHOWN if c in frame.columns and not _constant_noise(frame, c)]
    columns += [c for c in frame.columns if "[" in c]  # per-dataset columns of across_datasets
    table = Table(title=Text(title) if title else None, show_lines=False)
    for column in columns:
        justify = "right" if pd.api.types.is_numeric_dtype(frame[column]) else "left"
        table.add_column(Text(_HEADERS.get(column, column)), justify=justify)
    if "is_pareto" in frame.columns:
        table.add_column("pareto")
    for _, row in frame.iterrows():
        cells = [_show(row[c], c, row) for c in columns]
        if "is_pareto" in frame.columns:
            cells.append("*" if row["is_pareto"] else "")
        table.add_row(*(Text(c) for c in cells))  # names are text, never rich markup
    console.print(table)


__all__ = ["FORMATS", "format_board", "print_leaderboard", "read_csv", "write_board", "write_csv", "write_output"]
