"""``render_dashboard`` under its former module name, for ``tl_bench.study.summary``.

Dashboards live in ``tl_bench.report``; this name goes once the study summary
no longer renders the dashboard itself.
"""

from __future__ import annotations

from tl_bench.report.dashboard import render_dashboard

__all__ = ["render_dashboard"]
