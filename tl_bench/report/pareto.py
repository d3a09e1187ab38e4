"""Pareto fronts of a score to maximise against a cost to minimise."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def pareto_mask(score: npt.ArrayLike, cost: npt.ArrayLike) -> np.ndarray:
    """``True`` for each point that no other point dominates (higher score at lower cost).

    A point is dominated when another one is at least as good on both axes and
    strictly better on one. Identical points do not dominate each other, so
    exact ties on the front are all kept. Points with a missing (NaN) score or
    cost are never on the front and never dominate. Runs in O(n log n).
    """
    s = np.asarray(score, dtype=float)
    c = np.asarray(cost, dtype=float)
    if s.shape != c.shape or s.ndim != 1:
        raise ValueError(f"score and cost must be 1-D and of equal length, got {s.shape} and {c.shape}")
    mask = np.zeros(len(s), dtype=bool)
    valid = np.flatnonzero(np.isfinite(s) & np.isfinite(c))
    if valid.size == 0:
        return mask
    vs, vc = s[valid], c[valid]
    # Group by cost: a point survives when it has the best score of its cost group
    # and beats (strictly) every point of every cheaper group.
    costs, group = np.unique(vc, return_inverse=True)
    group_best = np.full(len(costs), -np.inf)
    np.maximum.at(group_best, group, vs)
    cheaper_best = np.concatenate(([-np.inf], np.maximum.accumulate(group_best)[:-1]))
    mask[valid] = (vs == group_best[group]) & (vs > cheaper_best[group])
    return mask


__all__ = ["pareto_mask"]
