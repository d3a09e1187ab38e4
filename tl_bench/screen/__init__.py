"""Transferability screening: rank (backbone, weights) candidates from frozen features in seconds.

``scores`` holds LogME and k-NN accuracy; ``features`` gets a candidate's pooled features through
the probes' feature cache; ``screening`` scores, ranks (equal scores tie), keeps and records them.
"""

from __future__ import annotations

from tl_bench.screen.scores import SCORES, knn_accuracy, logme
from tl_bench.screen.screening import (
    Candidate,
    as_records,
    candidates_of,
    kept,
    rank_candidates,
    record_screening,
    screen_dataset,
    ties,
)

__all__ = ["SCORES", "Candidate", "as_records", "candidates_of", "kept", "knn_accuracy", "logme", "rank_candidates",
           "record_screening", "screen_dataset", "ties"]
