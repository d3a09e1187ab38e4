"""The read side: what the studies wrote to MLflow, as leaderboards, files, dashboards and the UI.

``frame`` reads the runs (through ``tl_bench.tracking`` only), ``settings`` counts and
averages the seeds of each setting, ``leaderboard`` ranks them with the columns of ``columns``, ``export`` writes and prints
boards, ``pareto`` finds fronts, ``dashboard`` (with ``dashboard_definition`` and
``panels``) renders HTML pages, and ``ui`` starts the MLflow UI on a store.
"""

from __future__ import annotations

from tl_bench.report.columns import COMBINATION, CSV_COLUMNS, DEFAULT_METRIC, EXTRA_COLUMNS
from tl_bench.report.dashboard import dashboard_html, log_study_dashboard, render_dashboard
from tl_bench.report.dashboard_definition import DEFAULT_DASHBOARD, Dashboard, load_dashboard
from tl_bench.report.directions import DIRECTIONS, metric_direction, resolve_ascending
from tl_bench.report.export import FORMATS, format_board, print_leaderboard, read_csv, write_board, write_csv
from tl_bench.report.frame import importance_frame, trial_runs
from tl_bench.report.leaderboard import Filters, across_datasets, leaderboard, rank_runs
from tl_bench.report.pareto import pareto_mask
from tl_bench.report.settings import settings_table, trial_table
from tl_bench.report.ui import LOOPBACK, check_host, check_port, free_port, is_loopback, serve_ui, ui_command

__all__ = [
    "DIRECTIONS",
    "metric_direction",
    "resolve_ascending",
    "COMBINATION",
    "CSV_COLUMNS",
    "DEFAULT_DASHBOARD",
    "DEFAULT_METRIC",
    "EXTRA_COLUMNS",
    "FORMATS",
    "LOOPBACK",
    "Dashboard",
    "Filters",
    "across_datasets",
    "check_host",
    "check_port",
    "dashboard_html",
    "format_board",
    "free_port",
    "is_loopback",
    "importance_frame",
    "leaderboard",
    "load_dashboard",
    "log_study_dashboard",
    "pareto_mask",
    "print_leaderboard",
    "rank_runs",
    "read_csv",
    "render_dashboard",
    "serve_ui",
    "settings_table",
    "trial_runs",
    "trial_table",
    "ui_command",
    "write_board",
    "write_csv",
]
