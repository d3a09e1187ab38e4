"""Which way each metric is better: accuracies up; times, sizes, memory, FLOPs and latency down.

A board ranked by a cost puts the cheapest first without being told; a metric this table does
not know is not guessed at: the caller says ``--direction max`` or ``--direction min``.
"""

from __future__ import annotations

import re

from tl_bench.errors import OutputError, did_you_mean

MAX, MIN = "max", "min"
DIRECTIONS = (MAX, MIN)
# Known names first; the patterns below cover the rest of tl-bench's metrics and their means.
KNOWN: dict[str, str] = {
    "val_acc_lcb": MAX, "val_acc": MAX, "test_acc": MAX, "val_top5": MAX, "gain_vs_scratch": MAX,
    "train_throughput_ips": MAX, "infer_ips": MAX, "wins": MAX,
    "train_time_s": MIN, "feature_time_s": MIN, "params_total": MIN, "params_trainable": MIN,
    "flops_fwd_per_image": MIN, "peak_mem_mb": MIN, "latency_ms": MIN, "adapter_mb": MIN, "mean_rank": MIN,
    "train_loss": MIN, "val_loss": MIN,
}
_UP = re.compile(r"(acc|top\d|f1|auc|precision|recall|_ips$|throughput)")
_DOWN = re.compile(r"(_s$|_ms$|_mb$|_gb$|^params_|^flops_|time|latency|mem|loss|error|ece|nll)")
_PER_DATASET = re.compile(r"\[.*\]$")


def metric_direction(metric: str) -> str | None:
    """``max`` (higher is better), ``min`` (lower is better) or None when the metric is not known."""
    base = _PER_DATASET.sub("", metric)
    base = base if base == "mean_rank" else base.removeprefix("mean_")
    if base in KNOWN:
        return KNOWN[base]
    if _UP.search(base):
        return MAX
    if _DOWN.search(base):
        return MIN
    return None


def resolve_ascending(metric: str, *, direction: str | None = None, ascending: bool | None = None) -> bool:
    """Whether ``metric`` ranks ascending: ``direction`` (or the older ``ascending`` flag) when given,
    else the metric's known direction; OutputError for an unknown metric without one, or for both."""
    if direction is not None and direction not in DIRECTIONS:
        raise OutputError(f"unknown direction {direction!r}{did_you_mean(direction, DIRECTIONS)}",
                          "max (higher is better) or min (lower is better)")
    if direction is not None and ascending is not None and (direction == MIN) != ascending:
        raise OutputError(f"--ascending contradicts --direction {direction}", "one of them (--direction min is "
                                                                               "--ascending)")
    if direction is not None:
        return direction == MIN
    if ascending is not None:
        return ascending
    known = metric_direction(metric)
    if known is None:
        raise OutputError(f"metric {metric!r} has no known direction",
                          "--direction max (higher is better) or --direction min (lower is better)")
    return known == MIN


__all__ = ["DIRECTIONS", "KNOWN", "MAX", "MIN", "metric_direction", "resolve_ascending"]
