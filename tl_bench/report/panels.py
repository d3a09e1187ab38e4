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
    ScratchGainPanel,
)
from tl_bench.report.pareto import pareto_mask
from tl_bench.report.settings import outcome_text
from tl_bench.tracking.names import MIN_IMPORTANCE_TRIALS

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
        # one line per backbone and weights: pretrained and scratch apart at each depth (scratch dashed)
        for (backbone, weights), lines in rows.groupby(["backbone", rows["weights"].astype(str)], sort=True):
            best = lines.groupby("freeze_depth")[metric].max().reindex(order).dropna()
            fig.add_trace(go.Scatter(x=list(best.index), y=best.to_numpy(), mode="lines+markers",
                                     name=f"{backbone} {weights}", line=dict(dash="dash" if weights == SCRATCH else "solid")))
        fig.update_layout(title=dataset, xaxis_title="freeze depth (leading stages frozen)", yaxis_title=f"best {metric}")
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
        return figure_html(fig)

    return _per_dataset(board, metric, draw)


SCRATCH = "scratch"  # the weights label of a randomly initialised backbone


def _grid(rows: pd.DataFrame, panel: ScratchGainPanel, metric: str) -> pd.DataFrame:
    grid = rows.pivot_table(index=panel.rows, columns=panel.columns, values=metric, aggfunc="max")
    for axis, name in ((0, panel.rows), (1, panel.columns)):
        if name == "freeze_depth":
            order = _depth_order(pd.Series(grid.axes[axis]))
            grid = grid.reindex(order, axis=axis)
    return grid


def scratch_gain(rows: pd.DataFrame, panel: ScratchGainPanel, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best, gain) grids of one backbone's rows: the best ``metric`` per cell, and its gain over scratch.

    With ``rows == "weights"`` each row is one weights choice and its gain is measured against the scratch
    row at the same column (NaN for the scratch row itself); otherwise ``best`` holds the best pretrained
    (non-scratch) trial of each cell and ``gain`` that minus the best scratch trial of the same cell."""
    rows = rows.assign(**{c: rows[c].astype(str) for c in (panel.rows, panel.columns, "weights")})
    if panel.rows == "weights":
        best = _grid(rows, panel, metric)
        base = best.loc[SCRATCH] if SCRATCH in best.index else pd.Series(float("nan"), index=best.columns)
        gain = best.sub(base, axis=1)
        if SCRATCH in gain.index:
            gain.loc[SCRATCH] = float("nan")
        return best, gain
    pretrained, scratch = rows[rows["weights"] != SCRATCH], rows[rows["weights"] == SCRATCH]
    best = _grid(pretrained, panel, metric) if len(pretrained) else _grid(rows, panel, metric) * float("nan")
    base = _grid(scratch, panel, metric).reindex_like(best) if len(scratch) else best * float("nan")
    return best, best - base


def scratch_gain_panel(board: pd.DataFrame, panel: ScratchGainPanel, metric: str) -> str:
    """One heatmap per dataset and backbone: colour and number the best ``metric``, the number in brackets its
    gain over scratch; a backbone with only scratch or only pretrained trials says what is missing."""
    def draw(dataset: str, rows: pd.DataFrame) -> str:
        parts = []
        for backbone, own in rows.groupby("backbone", sort=True):
            kinds = set(own["weights"].astype(str))
            if kinds == {SCRATCH} or SCRATCH not in kinds:
                missing = "pretrained weights" if kinds == {SCRATCH} else "scratch"
                parts.append(note(f"{dataset}, {backbone}: no {missing} trial to compare with."))
                continue
            best, gain = scratch_gain(own, panel, metric)
            text = [[("" if pd.isna(v) else f"{v:.3f}") + ("" if pd.isna(g) else f" ({g:+.3f})")
                     for v, g in zip(vr, gr)] for vr, gr in zip(best.to_numpy(), gain.to_numpy())]
            what = "best" if panel.rows == "weights" else "best pretrained"
            fig = go.Figure(go.Heatmap(z=best.to_numpy(), x=[str(c) for c in best.columns], y=[str(i) for i in best.index],
                                       text=text, texttemplate="%{text}", colorscale="Viridis",
                                       colorbar=dict(title=metric), customdata=gain.to_numpy(),
                                       hovertemplate=f"{panel.rows} %{{y}}<br>{panel.columns} %{{x}}<br>{what} {metric} "
                                                     "%{z:.4f}<br>gain over scratch %{customdata:+.4f}<extra></extra>"))
            fig.update_layout(title=f"{dataset}: {backbone} ({what} {metric}, gain over scratch in brackets)",
                              xaxis_title=panel.columns, yaxis_title=panel.rows)
            fig.update_xaxes(type="category")
            fig.update_yaxes(type="category")
            parts.append(figure_html(fig, height=max(300, 80 + 40 * len(best.index))))
        return "\n".join(parts)

    return _per_dataset(board, metric, draw)


def importance_panel(importances: pd.DataFrame, panel: ImportancePanel) -> str:
    """Per dataset, the importances with the number of complete trials they rest on; a dataset with fewer
    than ``MIN_IMPORTANCE_TRIALS`` gets a line saying why it has none (importances from so few trials are noise)."""
    if importances.empty:
        return note(f"No parameter importances logged yet: a study computes them once it has {MIN_IMPORTANCE_TRIALS} "
                    "complete trials; below that they are noise (compare settings on the leaderboard instead).")
    parts = []
    for dataset, rows in importances.groupby("dataset", sort=True):
        n_trials = rows["n_trials"].iloc[0] if "n_trials" in rows.columns else float("nan")
        if pd.notna(n_trials) and n_trials < MIN_IMPORTANCE_TRIALS:
            parts.append(note(f"{dataset}: importances left out: {int(n_trials)} complete trials, fewer than "
                              f"{MIN_IMPORTANCE_TRIALS}; below that they are noise."))
            continue
        basis = f"{int(n_trials)} complete trials" if pd.notna(n_trials) else "number of trials not recorded"
        rows = rows.sort_values("importance", ascending=False).head(panel.top).iloc[::-1]
        fig = go.Figure(go.Bar(x=rows["importance"], y=rows["param"], orientation="h", marker_color="#2e86c1"))
        fig.update_layout(title=f"{dataset} ({basis})", xaxis_title="importance (Optuna; the values sum to 1)")
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
    "scratch_gain",
    "scratch_gain_panel",
]
