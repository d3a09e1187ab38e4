"""Leaderboard frames out: CSV, Markdown, JSON files and the terminal table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tl_bench.errors import OutputError, did_you_mean
from tl_bench.report.columns import TEXT_COLUMNS
from tl_bench.report.readable import view

FORMATS = ("csv", "md", "json")


def format_board(frame: pd.DataFrame, fmt: str = "csv", *, all_columns: bool = False) -> str:
    """The frame as text: ``csv`` (RFC 4180 quoting, UTF-8), ``md`` (a Markdown table of the
    readable view, every column with ``all_columns``) or ``json`` (records)."""
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return frame.to_json(orient="records", force_ascii=False, indent=1) + "\n"
    if fmt == "md":
        return _markdown(frame, all_columns=all_columns)
    raise OutputError(f"unknown leaderboard format {fmt!r}{did_you_mean(fmt, FORMATS)}", ", ".join(FORMATS))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")  # a pipe would end the cell; a newline the row


def _markdown(frame: pd.DataFrame, *, all_columns: bool) -> str:
    headers, rows, _ = view(frame, all_columns=all_columns)
    lines = ["| " + " | ".join(map(_md_cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(_md_cell, cells)) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def write_board(frame: pd.DataFrame, path: str | Path, fmt: str | None = None, *, all_columns: bool = False) -> Path:
    """Write ``frame`` to ``path`` as ``fmt`` (default: from the suffix, ``.csv`` otherwise)."""
    path = Path(path)
    fmt = fmt or {".md": "md", ".json": "json"}.get(path.suffix.lower(), "csv")
    return write_output(path, format_board(frame, fmt, all_columns=all_columns), "the leaderboard")


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


def print_leaderboard(
    frame: pd.DataFrame, *, console: Console | None = None, title: str | None = None, all_columns: bool = False
) -> None:
    """The readable view as a rich table (``*`` marks the Pareto front); every column with ``all_columns``."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # piped or logged: keep the table readable
    if frame.empty:
        console.print(Text(f"{title + ': ' if title else ''}no finished trials match"))
        return
    headers, rows, numeric = view(frame, all_columns=all_columns)
    table = Table(title=Text(title) if title else None, show_lines=False)
    for name, right in zip(headers, numeric):
        table.add_column(Text(name), justify="right" if right else "left")
    for cells in rows:
        table.add_row(*(Text(c) for c in cells))  # names are text, never rich markup
    console.print(table)


__all__ = ["FORMATS", "format_board", "print_leaderboard", "read_csv", "write_board", "write_csv", "write_output"]
