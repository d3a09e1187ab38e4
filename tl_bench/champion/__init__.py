"""Registered versions judged and explained: their evaluation reports and the promotion gate.

``classifier`` rebuilds a version's model (one model's bundle, or an ensemble's files) and gives
its logits; ``version_report`` evaluates it on its study's splits and logs the report on its run,
linked from the version; ``promotion`` applies the study's ``promote.rule`` and moves the
aliases. ``tl_bench.study.keep`` calls both when a study ends; the soup and ensemble commands
(``tl_bench.combine``) and ``tl-bench evaluate`` (``evaluate_model``) call them for their own models.
This package sits below ``tl_bench.study``: it imports neither the study nor the trainer.
"""

from __future__ import annotations

from tl_bench.champion.classifier import ENSEMBLE_FORMAT, Classifier, ensemble_of, load_classifier, save_classifier
from tl_bench.champion.promotion import gate_version, recorded_score, score_tags, single_score
from tl_bench.champion.version_report import (
    VersionEvaluation,
    evaluate_classifier,
    evaluate_splits,
    headline,
    predict_split,
    publish_report,
    report_version,
)

__all__ = [
    "ENSEMBLE_FORMAT",
    "Classifier",
    "VersionEvaluation",
    "ensemble_of",
    "evaluate_classifier",
    "evaluate_splits",
    "gate_version",
    "headline",
    "load_classifier",
    "predict_split",
    "publish_report",
    "recorded_score",
    "report_version",
    "save_classifier",
    "score_tags",
    "single_score",
]
