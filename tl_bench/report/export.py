"""Leaderboard frames out: CSV, Markdown, JSON files and the terminal table."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tl_bench.errors import OutputError, did_you_mean
from tl_bench.report.columns import TEXT_COLUMNS
from tl_bench.report.readable import priority, view, view_columns

FORMATS = ("csv", "md", "json")
NAME_WIDTH = 24  # a terminal table folds longer names (backbones with a pretrained tag) onto a second line


def format_board(frame: pd.DataFrame, fmt: str = "csv", *, all_columns: bool = False, metric: str | None = None) -> str:
    """The frame as text: ``csv`` (RFC 4180 quoting, UTF-8), ``md`` (a Markdown table of the
    readable view under the CSV's column names, every column with ``all_columns``; ``metric``, the
    ranking one, is shown too) or ``json`` (records)."""
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return frame.to_json(orient="records", force_ascii=False, indent=1) + "\n"
    if fmt == "md":
        return _markdown(frame, all_columns=all_columns, metric=metric)
    raise OutputError(f"unknown leaderboard format {fmt!r}{did_you_mean(fmt, FORMATS)}", ", ".join(FORMATS))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")  # a pipe would end the cell; a newline the row


def _markdown(frame: pd.DataFrame, *, all_columns: bool, metric: str | None) -> str:
    headers, rows, _ = view(frame, all_columns=all_columns, metric=metric, short=False)
    lines = ["| " + " | ".join(map(_md_cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(_md_cell, cells)) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def write_board(frame: pd.DataFrame, path: str | Path, fmt: str | None = None, *, all_columns: bool = False,
                metric: str | None = None) -> Path:
    """Write ``frame`` to ``path`` as ``fmt`` (default: from the suffix, ``.csv`` otherwise)."""
    path = Path(path)
    fmt = fmt or {".md": "md", ".json": "json"}.get(path.suffix.lower(), "csv")
    return write_output(path, format_board(frame, fmt, all_columns=all_columns, metric=metric), "the leaderboard")


OUTPUT_WORDS = "a file path in an existing, writable folder, or in a new folder below the working folder"


def check_output(path: str | Path, what: str) -> None:
    """OutputError when ``write_output`` could not write ``path``: a command that works a while before
    it writes checks the path first. Writes nothing."""
    path = Path(path)
    folder = path.absolute().parent
    nearest = next(p for p in (folder, *folder.parents) if p.exists())
    problem = None
    if path.is_dir():
        problem = "it is a folder"
    elif not nearest.is_dir():
        problem = f"{nearest} is a file, not a folder"
    elif nearest != folder and not folder.resolve().is_relative_to(Path.cwd().resolve()):
        problem = f"folder {folder} does not exist"
    elif not os.access(path if path.exists() else nearest, os.W_OK):
        problem = "permission denied"
    if problem is not None:
        raise OutputError(f"cannot write {what} to {path}: {problem}", OUTPUT_WORDS)


def write_output(path: str | Path, text: str, what: str) -> Path:
    """Write ``text`` to ``path`` (``what`` names it in the error line).

    A missing folder is created only below the working folder (``--out reports/x.html``);
    anywhere else a mistyped path fails instead of leaving new folders behind.
    """
    path = Path(path)
    accepted = OUTPUT_WORDS
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


def print_leaderboard(
    frame: pd.DataFrame, *, console: Console | None = None, title: str | None = None, all_columns: bool = False,
    metric: str | None = None,
) -> None:
    """The readable view as rich tables (``*`` marks the Pareto front): one per dataset (and split),
    ranks counting within it, of the columns that fit the console's width, kept in
    ``readable.PRIORITY`` order (``metric``, the ranking one, after the head) and never cut short;
    a last line says how many were left out. ``all_columns``: one table of every column, at the
    width they need."""
    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(width=160)  # piped or logged without a width: keep the table readable
    if frame.empty:
        console.print(Text(f"{title + ': ' if title else ''}no finished trials match"), soft_wrap=True)
        return
    if all_columns:
        headers, rows, numeric = view(frame, all_columns=True, metric=metric)
        table = _table(title, headers, rows, numeric, range(len(headers)))
        wide = Console(file=console.file, width=max(console.width, _width(console, table)),
                       force_terminal=console.is_terminal, no_color=console.no_color)  # lines as long as needed
        wide.print(table)
        return
    left = 0
    for name, part in _boards(frame):
        headers, rows, numeric = view(part, metric=metric)
        keep = _fitting(console, headers, rows, numeric, priority(view_columns(part, metric=metric), metric))
        console.print(_table(f"{title}: {name}" if title and name else title or name or None, headers, rows, numeric,
                             keep, fold_names=True))
        left = max(left, len(headers) - len(keep))
    if left:
        console.print(Text(f"{left} more column{'' if left == 1 else 's'} with a wider terminal, --all-columns, "
                           "or --format md|csv|json", style="dim"))


def _boards(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The frame cut per dataset and split (named; one unnamed part when it holds one, or no dataset column)."""
    keys = [c for c in ("dataset", "split") if c in frame.columns]
    if not keys or len(frame[keys].drop_duplicates()) == 1:
        return [("", frame)]
    named = [k for k in keys if frame[k].nunique(dropna=False) > 1]
    parts = frame.groupby(keys, sort=False, dropna=False)
    return [(" / ".join(str(part[k].iloc[0]) for k in named), part) for _, part in parts]


def _table(title: str | None, headers: list[str], rows: list[list[str]], numeric: list[bool],
           keep: Iterable[int], *, fold_names: bool = False) -> Table:
    shown = sorted(keep)
    table = Table(title=Text(title) if title else None, show_lines=False)
    for i in shown:
        # A cell is never cut short: a long name folds onto the next line (``fold_names``: past
        # NAME_WIDTH), and so would any cell of a table too wide for the console.
        cap = max(len(headers[i]), NAME_WIDTH) if fold_names and not numeric[i] else None
        table.add_column(Text(headers[i]), justify="right" if numeric[i] else "left", overflow="fold", max_width=cap)
    for cells in rows:
        table.add_row(*(Text(cells[i]) for i in shown))  # names are text, never rich markup
    return table


def _width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update(width=1_000_000), table).maximum


def _fitting(console: Console, headers: list[str], rows: list[list[str]], numeric: list[bool],
             order: list[int]) -> list[int]:
    """The columns, taken in ``order``, that fit the console's width at their full width (the first
    one always, so a very narrow console still gets a table)."""
    keep: list[int] = []
    for i in order:
        table = _table(None, headers, rows, numeric, [*keep, i], fold_names=True)
        if not keep or _width(console, table) <= console.width:
            keep.append(i)
    return keep


__all__ = ["FORMATS", "OUTPUT_WORDS", "check_output", "format_board", "print_leaderboard", "read_csv", "write_board",
           "write_csv", "write_output"]
