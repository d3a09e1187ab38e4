"""What a trained classifier is worth, and what to do with several: evaluation reports, the
promotion gate, model soups and ensembles.

``predictions.collect_logits`` gathers a split's logits and labels in one pass; ``report``
computes a classifier's report on one split from them (confusion, per-class precision/recall/F1
from ``metrics``, top-1/top-5, ECE before and after the temperature of ``calibration``,
worst-confused pairs); ``report_files`` writes it as a folder (CSV, PNG, JSON,
Markdown and HTML) and ``report_pages`` renders its one page. ``gate`` decides whether a
challenger replaces the champion (``lcb``, ``paired_bootstrap``, ``always``); ``soup`` averages
state dicts of one architecture (greedy or uniform); ``ensemble`` averages the logits of models.
Nothing here reads or writes a store: the caller logs the files and decisions.
"""

from __future__ import annotations

from tl_bench.evaluation.calibration import TEMPERATURE_BOUNDS, fit_temperature, nll, rescale_probabilities
from tl_bench.evaluation.ensemble import Ensemble
from tl_bench.evaluation.gate import (
    RULES,
    Decision,
    Evidence,
    GateError,
    SettingScore,
    always_gate,
    decide,
    lcb_gate,
    paired_bootstrap_gate,
)
from tl_bench.evaluation.metrics import ECE_BINS, expected_calibration_error, topk_accuracy
from tl_bench.evaluation.predictions import collect_logits
from tl_bench.evaluation.report import ClassifierReport, build_report
from tl_bench.evaluation.report_files import REPORT_FILES, write_report
from tl_bench.evaluation.soup import Soup, SoupError, average_state_dicts, check_ingredients, greedy_soup

__all__ = [
    "ECE_BINS",
    "REPORT_FILES",
    "RULES",
    "TEMPERATURE_BOUNDS",
    "ClassifierReport",
    "Decision",
    "Ensemble",
    "Evidence",
    "GateError",
    "SettingScore",
    "Soup",
    "SoupError",
    "always_gate",
    "average_state_dicts",
    "build_report",
    "check_ingredients",
    "collect_logits",
    "decide",
    "expected_calibration_error",
    "fit_temperature",
    "greedy_soup",
    "lcb_gate",
    "nll",
    "paired_bootstrap_gate",
    "rescale_probabilities",
    "topk_accuracy",
    "write_report",
]
