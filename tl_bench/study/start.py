"""``start: candidates``: before the sampler, each (backbone, weights) candidate is fine-tuned once
with the recipe a practitioner tries first, so the sampler starts from one result per candidate.

That recipe trains the whole backbone (freeze depth 0, else the shallowest depth offered) for the
largest number of epochs offered, at the centre of every other range (the geometric centre of a
log range, snapped to its step) and the first choice of every other list. Candidates go in
screening's ranking when the spec screens; otherwise in an order shuffled with the sampler's seed,
so that the order a study file happens to list its candidates in (often the favourite first) does
not decide which one runs first: the same seed gives the same order, and an unseeded sampler an
order of its own. The grid sampler runs every combination anyway and gets no start.
"""

from __future__ import annotations

import math
import random
from typing import Any

from tl_bench.study.space import SearchSpace, candidate_key


def recipe_value(name: str, rng: Any) -> Any:
    """The standard value of hyperparameter ``name`` within its search range ``rng``."""
    choices = getattr(rng, "choices", None)
    if choices is not None:
        numbers = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
        return max(choices) if name == "epochs" and numbers else choices[0]
    low, high = rng.low, rng.high
    if name == "epochs":
        return high
    value = math.sqrt(low * high) if rng.log else (low + high) / 2
    if getattr(rng, "step", None):
        value = min(high, low + round((value - low) / rng.step) * rng.step)
    if isinstance(low, int) and isinstance(high, int):
        return int(round(value))
    return float(f"{value:.3g}") if rng.log else value


def candidate_starts(space: SearchSpace, ranking: list[str] | None = None) -> list[dict[str, Any]]:
    """Optuna params of the first trial of each candidate, in ``ranking`` order ("<backbone>|<weights>")
    where one is given, else in the spec's order shuffled with the spec's sampler seed."""
    if space.grid:
        return []
    pairs = [(bb, w) for bb in space.backbones for w in space.weights[bb]]
    if ranking:
        place = {key: i for i, key in enumerate(ranking)}
        pairs.sort(key=lambda pair: place.get(candidate_key(*pair), len(place)))
    else:
        # A generator of its own: seeding it from the sampler's seed reproduces the order without
        # touching the sampler's stream (seed None draws from the OS, as the sampler then does).
        random.Random(space.spec.sampler.seed).shuffle(pairs)
    hyper = {name: recipe_value(name, rng) for name, rng in space.hyper.items()}
    starts = []
    for backbone, weights in pairs:
        depth = min((d for d in space.depths[backbone] if isinstance(d, int)), default="all")
        starts.append(space.baseline_params(
            {"backbone": backbone, "weights": weights, "freeze_depth": depth, **hyper}))
    return starts


__all__ = ["candidate_starts", "recipe_value"]
