"""Kendall's tau, the one rule screening uses to compare two orderings of the same candidates.

Ties are expected: every weights of one backbone has the same static values (parameters, FLOPs),
and scores can be equal. scipy's default tau-b counts a tied pair as neither concordant nor
discordant and scales by the pairs untied on each side, so a ranking that cannot separate two
candidates is neither rewarded nor punished for them. Where either side is constant tau is
undefined (scipy's NaN): it is reported as absent, never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tl_bench.screen.scores import SCORES
from tl_bench.screen.screening import STATIC_RANKERS, Candidate


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of ``x`` against ``y`` (ties handled as above); None where undefined
    (fewer than two items, a constant side, or a NaN)."""
    if len(x) < 2 or any(math.isnan(v) for v in (*x, *y)):
        return None
    from scipy.stats import kendalltau  # slow import: only when a tau is asked for

    tau = float(kendalltau(x, y).statistic)
    return None if math.isnan(tau) else tau


def static_agreement(candidates: list[Candidate]) -> dict[str, dict[str, float | None]]:
    """Per score, its tau against each static ranker over ``candidates``: near 1, the score orders
    the candidates by size and says little a parameter count does not."""
    return {score: {static: kendall_tau([c.score(score) for c in candidates], [c.score(static) for c in candidates])
                    for static in STATIC_RANKERS}
            for score in SCORES}


__all__ = ["kendall_tau", "static_agreement"]
