"""``dashboards/*.yaml`` -> one self-contained HTML file (plotly.js embedded, works offline).

Everything comes from MLflow: the leaderboard from trial runs, parameter
importances from the ``importance.*`` metrics of the parent runs.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
import tempfile
from pathlib import Path

import pandas as pd
import plotly.offline

from tl_bench.errors import OutputError
from tl_bench.spec import StudySpec
from tl_bench.tracking import Tracker
from tl_bench.report.dashboard_definition import (
    DEFAULT_DASHBOARD,
    Dashboard,
    ImportancePanel,
    LeaderboardPanel,
    load_dashboard,
)
from tl_bench.report.export import write_output
from tl_bench.report.frame import importance_frame, trial_runs
from tl_bench.report.leaderboard import rank_runs
from tl_bench.report.settings import trial_table
from tl_bench.report.panels import (
    freeze_depth_panel,
    heatmap_panel,
    importance_panel,
    leaderboard_panel,
    note,
    pareto_panel,
    pruned_list,
    scratch_gain_panel,
)
from tl_bench.tracking import locate_store

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.meta, .note { color: #666; } table.board { border-collapse: collapse; font-size: 0.85rem; }
table.board th, table.board td { padding: 0.2rem 0.5rem; border-bottom: 1px solid #eee; text-align: right; }
"""


def render_dashboard(
    definition: Path | None,
    tracking_uri: str | None,
    *,
    study: str | None = None,
    dataset: str | None = None,
    out: Path,
    plotly_head: str | None = None,
) -> Path:
    """Render ``definition`` (None: the built-in overview) on the store's runs into ``out``.

    ``study`` and ``dataset`` override the definition's filters; ``tracking_uri`` None resolves
    like the leaderboard's; ``plotly_head`` loads plotly.js instead of embedding it (an artifact
    sharing the store's copy). Returns ``out``.
    """
    dash = load_dashboard(definition)
    html_text = dashboard_html(dash, tracking_uri, study=study, dataset=dataset, plotly_head=plotly_head)
    return write_output(out, html_text, "the dashboard")


def dashboard_html(dash: Dashboard = DEFAULT_DASHBOARD, tracking_uri: str | None = None, *, study: str | None = None,
                   dataset: str | None = None, plotly_head: str | None = None) -> str:
    """The dashboard page as one HTML string."""
    tracking_uri = locate_store(tracking_uri or None)
    filters = dash.filters.model_copy(update={k: v for k, v in {"study": study, "dataset": dataset}.items() if v})
    # Every run: pruned and failed seeds are counted on the boards even though they are not averaged.
    runs = trial_runs(tracking_uri, study=filters.study, dataset=filters.dataset, include_unfinished=True)
    finished = int((runs["status"] == "FINISHED").sum())
    boards: dict[str, pd.DataFrame] = {}

    def board(metric: str) -> pd.DataFrame:
        if metric not in boards:
            boards[metric] = rank_runs(runs, filters, metric=metric)
        return boards[metric]

    sections = []
    for panel in dash.panels:
        metric = getattr(panel, "metric", None) or dash.metric
        try:
            if isinstance(panel, ImportancePanel):
                body = importance_panel(importance_frame(tracking_uri, study=filters.study, dataset=filters.dataset),
                                        panel)
            elif isinstance(panel, LeaderboardPanel):
                body = leaderboard_panel(board(metric), panel, metric) + pruned_list(trial_table(runs))
            else:
                render = {"pareto": pareto_panel, "heatmap": heatmap_panel, "freeze_depth": freeze_depth_panel,
                          "scratch_gain": scratch_gain_panel}
                body = render[panel.kind](board(metric), panel, metric)  # type: ignore[operator]
        except OutputError as err:  # e.g. a metric no run logged: the other panels still render
            body = note(str(err))
        sections.append(f'<section class="panel {panel.kind}"><h2>{html.escape(panel.title)}</h2>\n{body}\n</section>')
    scope = ", ".join(f"{k}={v}" for k, v in filters.model_dump().items() if v is not None) or "all studies"
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(dash.title)}</title><style>{_STYLE}</style>"
        + (plotly_head or f"<script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script>") + "</head><body>"
        f"<h1>{html.escape(dash.title)}</h1><p class=\"meta\">{finished} finished trial runs of {len(runs)}; "
        f"{html.escape(scope)}; metric {html.escape(dash.metric)}; {html.escape(_no_password(tracking_uri))}; "
        f"{stamp}</p>\n"
        + "\n".join(sections) + "\n</body></html>\n"
    )


def _no_password(uri: str) -> str:
    # Database URIs may carry credentials; the page may be shared.
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", uri)


def log_study_dashboard(spec: StudySpec, tracker: Tracker, dataset: str, parent_run_id: str) -> None:
    """The built-in overview of one dataset study, logged as ``dashboard.html`` on its parent run
    (``RunOptions.on_summary`` of ``tl-bench run``: called once the study is summarised)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dashboard.html"
        render_dashboard(None, tracker.tracking_uri, study=spec.name, dataset=dataset, out=out,
                         plotly_head=tracker.plotly_head())
        tracker.log_artifact(parent_run_id, str(out))


__all__ = ["dashboard_html", "log_study_dashboard", "render_dashboard"]
