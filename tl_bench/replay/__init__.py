"""Replays of a finished study: other search strategies simulated on its recorded curves and costs.

``table`` reads the recorded table (per configuration: per-epoch validation accuracy and seconds),
``simulate`` runs a real Optuna sampler and pruner in memory against it, ``report`` compares the
strategies' simulated time to quality. ``tl-bench replay`` (``cli/replay_cmd.py``) puts them together.
"""

from __future__ import annotations

from tl_bench.replay.report import StrategySummary, print_report, report_dict, summaries, time_to_quality
from tl_bench.replay.simulate import Search, SimTrial, recorded_search, replay_seeds, simulate
from tl_bench.replay.table import Record, ReplayError, Table, check_covers, read_table

__all__ = ["Record", "ReplayError", "Search", "SimTrial", "StrategySummary", "Table", "check_covers", "print_report",
           "read_table", "recorded_search", "replay_seeds", "report_dict", "simulate", "summaries",
           "time_to_quality"]
