"""One function per dashboard panel: leaderboard frame in, HTML fragment out.

Chart panels draw one figure per dataset (accuracies of different datasets do
not share a scale). A panel without data says so in a short note.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from tl_bench.report.dashboard_definition import (
    FreezeDepthPanel,
    HeatmapPanel,
    ImportancePanel,
    LeaderboardPanel,
    ParetoPanel,
)
from tl_bench.report.pareto import pareto_mask
from tl_bench.report.settings import outcome_text

TABLE_COLUMNS = ("rank", "dataset", "backbone", "weights", "freeze_depth", "neck", "head", "test_acc", "val_acc",
                 "n_seeds", "test_acc_std", "params_trainable", "train_time_s", "epochs", "lr", "trial", "is_pareto")
COMBO_HOVER = ("backbone", "weights", "freeze_depth", "neck", "head")


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def figure_html(fig: go.Figure, height: int = 440) -> str:
    # plotly.js is embedded once in the page head; each figure is a div and a script.
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=40, b=60), template="plotly_white")
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, default_height=f"{height}px")


def _depth_order(depths: pd.Series) -> list[str]:
    # Numeric depths in order, the whole-backbone "all" last.
    values = sorted({str(d) for d in depths.dropna()})
    return sorted((v for v in values if v != "all"), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v)) + (
        ["all"] if "all" in values else [])


def _no_metric(board: pd.DataFrame, metric: str) -> str | None:
    if board.empty:
        return note("No finished trials match the filters yet: nothing to show.")
    if metric not in board.columns or board[metric].isna().all():
        return note(f"No trial logged the metric {metric!r}: nothing to show.")
    return None


def _per_dataset(board: pd.DataFrame, metric: str, draw: Callable[[str, pd.DataFrame], str]) -> str:
    """``draw(dataset, rows)`` for each dataset in name order, or the note saying why there is nothing."""
    if (empty := _no_metric(board, metric)) is not None:
        return empty
    return "\n".join(draw(str(name), rows) for name, rows in board.groupby("dataset", sort=True))


def leaderboard_panel(board: pd.DataFrame, panel: LeaderboardPanel, metric: str) -> str:
    if (empty := _no_metric(board, metric)) is not None:
        return empty
    rows = board.groupby("dataset", sort=True).head(panel.top)
    columns = [c for c in TABLE_COLUMNS if c in rows.columns] + ([metric] if metric not in TABLE_COLUMNS else [])
    return rows[columns].to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}",
                                 classes="board", border=0)


def pruned_list(trials: pd.DataFrame, top: int = 20) -> str:
    """The pruned trials of a trial table (``seeds.trial_table``): which, at which epoch and why."""
    pruned = trials[trials["state"] == "PRUNED"].sort_values(["dataset", "trial"], kind="stable")
    if pruned.empty:
        return ""
    items = []
    for _, row in pruned.head(top).iterrows():
        trial = f"trial {int(row['trial'])}" if pd.notna(row["trial"]) else str(row["run_id"])
        combo = " ".join(str(row[c]) for c in COMBO_HOVER)
        reason = f" ({row['pruned_reason']})" if isinstance(row.get("pruned_reason"), str) else ""
        items.append(f"<li>{html.escape(str(row['dataset']))} {html.escape(trial)}: {html.escape(combo)}, "
                     f"{html.escape(outcome_text(row['state'], row['pruned_epoch']) + reason)}</li>")
    more = f"<li>and {len(pruned) - top} more</li>" if len(pruned) > top else ""
    return f'<p class="note">Pruned trials (stopped early by the pruner, not ranked):</p><ul class="pruned">{"".join(items)}{more}</ul>'


def pareto_panel(board: pd.DataFrame, panel: ParetoPanel, metric: str) -> str:
    def draw(dataset: str, rows: pd.DataFrame) -> str:
        rows = rows.dropna(subset=[metric, panel.cost])
        if rows.empty:
            return note(f"{dataset}: no trial has both {metric} and {panel.cost}.")
        front = rows[pareto_mask(rows[metric].to_numpy(), rows[panel.cost].to_numpy())].sort_values(panel.cost)
        hover = rows[list(COMBO_HOVER)].astype(str).agg(" | ".join, axis=1)
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=rows[panel.cost], y=rows[metric], mode="markers", name="combinations",
                                 text=hover, hovertemplate="%{text}<br>%{x:.4g}, %{y:.4f}<extra></extra>",
                                 marker=dict(size=9, color="#7f8c8d", opacity=0.7)))
        fig.add_trace(go.Scatter(x=front[panel.cost], y=front[metric], mode="lines+markers", name="Pareto front",
                                 line=dict(shape="hv", color="#c0392b"), marker=dict(size=11, color="#c0392b")))
        fig.update_layout(title=dataset, xaxis_title=panel.cost, yaxis_title=metric)
        fig.update_xaxes(type="log" if panel.log_x and (rows[panel.cost] > 0).all() else "linear")
        return figure_html(fig)

    return _per_dataset(board, metric, draw)


def heatmap_panel(board: pd.DataFrame, panel: HeatmapPanel, metric: str) -> str:
    def draw(dataset: str, rows: pd.DataFrame) -> str:
        best = rows.assign(**{panel.rows: rows[panel.rows].astype(str), panel.columns: rows[panel.columns].astype(str)})
        grid = best.pivot_table(index=panel.rows, columns=panel.columns, values=metric, aggfunc="max")
        if panel.columns == "freeze_depth":
            grid = grid[_depth_order(pd.Series(grid.columns))]
        fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=[str(c) for c in grid.columns], y=[str(i) for i in grid.index],
                                   colorscale="Viridis", texttemplate="%{z:.3f}", colorbar=dict(title=metric),
                                   hovertemplate=f"{panel.rows} %{{y}}<br>{panel.columns} %{{x}}<br>"
                                                 f"best {metric} %{{z:.4f}}<extra></extra>"))
        fig.update_layout(title=dataset, xaxis_title=panel.columns, yaxis_title=panel.rows)
        fig.update_xaxes(type="category")
        fig.update_yaxes(type="category")
        return figure_html(fig, height=max(300, 60 + 36 * len(grid.index)))

    return _per_dataset(board, metric, draw)


def freeze_depth_panel(board: pd.DataFrame, panel: FreezeDepthPanel, metric: str) -> str:
    def draw(dataset: str, rows: pd.DataFrame) -> str:
        rows = rows.assign(freeze_depth=rows["freeze_depth"].astype(str))
        order = _depth_order(rows["freeze_depth"])
        fig = go.Figure()
        for backbone, lines in rows.groupby("backbone", sort=True):
            best = lines.groupby("freeze_depth")[metric].max().reindex(order).dropna()
            fig.add_trace(go.Scatter(x=list(best.index), y=best.to_numpy(), mode="lines+markers", name=str(backbone)))
        fig.update_layout(title=dataset, xaxis_title="freeze depth (leading stages frozen)", yaxis_title=f"best {metric}")
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
        return figure_html(fig)

    return _per_dataset(board, metric, draw)


def importance_panel(importances: pd.DataFrame, panel: ImportancePanel) -> str:
    if importances.empty:
        return note("No parameter importances logged yet: Optuna computes them once a study has a few finished trials.")
    parts = []
    for dataset, rows in importances.groupby("dataset", sort=True):
        rows = rows.sort_values("importance", ascending=False).head(panel.top).iloc[::-1]
        fig = go.Figure(go.Bar(x=rows["importance"], y=rows["param"], orientation="h", marker_color="#2e86c1"))
        fig.update_layout(title=str(dataset), xaxis_title="importance (Optuna; the values sum to 1)")
        parts.append(figure_html(fig, height=max(260, 60 + 28 * len(rows))))
    return "\n".join(parts)


__all__ = [
    "figure_html",
    "freeze_depth_panel",
    "heatmap_panel",
    "importance_panel",
    "leaderboard_panel",
    "note",
    "pareto_panel",
    "pruned_list",
]
