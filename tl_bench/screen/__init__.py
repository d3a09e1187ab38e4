"""Transferability screening: rank (backbone, weights) candidates from frozen features in seconds.

``scores`` holds LogME and k-NN accuracy; ``features`` gets a candidate's pooled features through
the probes' feature cache, with its backbone's static size; ``screening`` scores, ranks (equal
scores tie), keeps and records them; ``agreement`` is the one Kendall's tau (ties as tau-b) that
compares a score, or a static ranker (parameters, FLOPs), with another ordering.
"""

from __future__ import annotations

from tl_bench.screen.agreement import kendall_tau, static_agreement
from tl_bench.screen.scores import SCORES, knn_accuracy, logme
from tl_bench.screen.screening import (
    RECORDED,
    STATIC_RANKERS,
    Candidate,
    as_records,
    candidates_of,
    kept,
    rank_candidates,
    record_screening,
    screen_dataset,
    ties,
)

__all__ = ["RECORDED", "SCORES", "STATIC_RANKERS", "Candidate", "as_records", "candidates_of", "kendall_tau", "kept",
           "knn_accuracy", "logme", "rank_candidates", "record_screening", "screen_dataset", "static_agreement", "ties"]
