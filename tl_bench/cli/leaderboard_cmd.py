"""``tl-bench leaderboard``, ``tl-bench ui`` and ``tl-bench dashboard``: look at what the studies wrote."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from tl_bench.cli.app import app
from tl_bench.errors import OutputError, did_you_mean

_SPEC = typer.Option(None, "--spec", help="Study file: read its MLflow store (and, for the leaderboard, its study).")
_URI = typer.Option(None, "--tracking-uri", help="MLflow store: sqlite:///..., a path to its .db file, a folder "
                                                   "holding mlflow.db, or http://... (default: runs/mlflow.db or "
                                                   "studies/runs/mlflow.db here).")


def _store(tracking_uri: str | None, spec: Path | None) -> tuple[str, str | None, str | None]:
    """The tracking URI to read, the study a spec names, and the spec's artifact folder when its
    store is the one read (None without a spec)."""
    from tl_bench.tracking import locate_store

    if spec is None:
        return locate_store(tracking_uri), None, None
    from tl_bench.spec import load_spec

    loaded = load_spec(spec)
    artifacts = loaded.artifact_location if tracking_uri is None else None
    return locate_store(tracking_uri or loaded.tracking_uri), loaded.name, artifacts


@app.command("leaderboard")
def leaderboard_command(
    spec: Optional[Path] = _SPEC,
    tracking_uri: Optional[str] = _URI,
    study: Optional[str] = typer.Option(None, "--study", help="Only this study (the spec's name; default with --spec)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Only this dataset."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone pattern, e.g. 'resnet*'."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Only these weights, e.g. scratch, pretrained."),
    freeze_depth: Optional[str] = typer.Option(None, "--freeze-depth", help="Only this freeze depth (a number or all)."),
    min_epochs: Optional[int] = typer.Option(None, "--min-epochs", min=1, help="Only trials of at least N epochs."),
    feasible_only: bool = typer.Option(False, "--feasible-only", help="Only settings that met the study's constraints."),
    with_challengers: bool = typer.Option(False, "--with-challengers", help="Also list the study's soups, ensembles "
                                                                            "and refits under the table."),
    across: bool = typer.Option(False, "--across-datasets", help="One row per combination run on every dataset."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Metric that ranks (any logged metric); default "
                                                                 "val_acc_lcb, validation accuracy's lower bound over seeds. "
                                                                 "Accuracies rank highest first; times, sizes, memory, "
                                                                 "FLOPs and latency lowest first."),
    direction: Optional[str] = typer.Option(None, "--direction", help="max or min: which way --metric is better "
                                                                       "(needed for a metric tl-bench does not know)."),
    ascending: bool = typer.Option(False, "--ascending", help="Lower is better: the same as --direction min."),
    include_unfinished: bool = typer.Option(False, "--include-unfinished", help="Also pruned, failed, running trials."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Rows per dataset (overall with --across-datasets)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the leaderboard as CSV to this file."),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv, md or json: print that instead of the table "
                                                               "(or write it with --out)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the leaderboard here (format: --format or suffix)."),
    all_columns: bool = typer.Option(False, "--all-columns", help="Every column in the table and in Markdown "
                                                                  "(CSV and JSON always have them all)."),
) -> None:
    """Rank combinations (backbone, weights, freeze depth, neck, head) by validation; test accuracy is reported."""

    from tl_bench.report import (
        DEFAULT_METRIC,
        FORMATS,
        across_datasets,
        format_board,
        leaderboard,
        print_leaderboard,
        resolve_ascending,
        write_board,
    )

    metric = metric or DEFAULT_METRIC
    if fmt is not None and fmt not in FORMATS:
        raise OutputError(f"unknown --format {fmt!r}{did_you_mean(fmt, FORMATS)}", ", ".join(FORMATS))
    # None: the metric's own direction (an unknown one is named once the store shows the metric exists)
    order: bool | None = None
    if direction is not None or ascending:
        order = resolve_ascending(metric, direction=direction, ascending=True if ascending else None)
    uri, spec_study, _ = _store(tracking_uri, spec)
    filters = dict(study=study or spec_study, dataset=dataset, backbone=backbone, weights=weights,
                   freeze_depth=freeze_depth, min_epochs=min_epochs, include_unfinished=include_unfinished)
    if across:
        frame = across_datasets(uri, metric=metric, ascending=order, top=top, **filters)
    else:
        frame = leaderboard(uri, metric=metric, ascending=order, top=top, feasible_only=feasible_only,
                            **filters)  # type: ignore[arg-type]
    shown = f"mean_{metric}" if across else metric  # the column that holds the ranking metric
    written = []
    if csv is not None:
        written.append(write_board(frame, csv, "csv"))
    if out is not None:
        written.append(write_board(frame, out, fmt, all_columns=all_columns, metric=shown))
    printed = fmt is not None and out is None
    if printed:
        sys.stdout.write(format_board(frame, fmt, all_columns=all_columns, metric=shown))  # type: ignore[arg-type]
    elif not written:  # a file asked for is the answer: one line says where, not the table again
        better = "lower" if resolve_ascending(metric, ascending=order) else "higher"
        what = "across datasets" if across else "per dataset"
        print_leaderboard(frame, title=f"Leaderboard {what}, ranked by {metric} ({better} is better)",
                          all_columns=all_columns, metric=shown)
        if with_challengers and not across:
            _print_challengers(uri, frame)
    for path in written:  # beside a board printed on stdout, the note goes to stderr
        typer.echo(f"wrote {len(frame)} row{'' if len(frame) == 1 else 's'} to {path}", err=printed)


def _print_challengers(uri: str, frame: Any) -> None:
    """The soups, ensembles and refits of each (study, dataset) on the board, one table each."""
    from rich.console import Console
    from rich.table import Table

    from tl_bench.report.challengers import challenger_rows

    console = Console()
    for study, dataset in frame[["study", "dataset"]].drop_duplicates().itertuples(index=False):
        rows = challenger_rows(uri, str(study), str(dataset))
        if rows.empty:
            console.print(f"{study} / {dataset}: no soup, ensemble or refit yet")
            continue
        table = Table("kind", "version", "val_acc", "test_acc", "params_total", "champion",
                      title=f"Challengers: {study} / {dataset}")
        for row in rows.itertuples(index=False):
            table.add_row(row.kind, str(row.version or "-"), _number(row.val_acc), _number(row.test_acc),
                          "-" if row.params_total != row.params_total else f"{int(row.params_total):,}",
                          "yes" if row.promoted else "")
        console.print(table)


def _number(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"


@app.command("ui")
def mlflow_ui(
    spec: Optional[Path] = _SPEC,
    tracking_uri: Optional[str] = _URI,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(5000, "--port", min=0, max=65535, help="Port; 0 picks a free one."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server worker processes."),
) -> None:
    """Start the MLflow UI on the study's store and print its URL (Ctrl-C stops it)."""
    from tl_bench.report import check_port, free_port, is_loopback, serve_ui
    from tl_bench.tracking import is_server, require_store

    uri, spec_study, artifact_root = _store(tracking_uri, spec)
    require_store(uri)  # a server must answer, a local store must exist
    if not is_server(uri):  # a server has its own UI: nothing is bound here
        port = port or free_port(host)
        check_port(host, port)  # a bad host or a taken port is the one line, before any warning
        if not is_loopback(host):
            typer.echo(f"warning: binding {host} exposes the UI beyond this machine", err=True)
    code = serve_ui(uri, host=host, port=port, workers=workers, artifact_root=artifact_root, study=spec_study,
                    announce=lambda line: typer.echo(line))
    if code:
        raise typer.Exit(code)


@app.command("dashboard")
def dashboard_command(
    definition: Optional[Path] = typer.Argument(None, metavar="DEFINITION", help="Dashboard YAML (default: the "
                                                "built-in overview, dashboards/overview.yaml)."),
    out: Path = typer.Option(..., "--out", help="HTML file to write (self-contained, works offline)."),
    spec: Optional[Path] = _SPEC,
    tracking_uri: Optional[str] = _URI,
    study: Optional[str] = typer.Option(None, "--study", help="Only this study (default with --spec: its name)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Only this dataset."),
) -> None:
    """Render a dashboard of the leaderboard, Pareto front, heatmaps, freeze depth and importances."""
    from tl_bench.report import render_dashboard

    uri, spec_study, _ = _store(tracking_uri, spec)
    path = render_dashboard(definition, uri, study=study or spec_study, dataset=dataset, out=out)
    typer.echo(f"wrote {path}")
