"""Optuna samplers and pruners from a StudySpec's plain fields.

Kept apart from ``tl_bench.spec`` so that reading a study file never imports
Optuna. Option names in the spec are the Optuna keyword arguments themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from tl_bench.spec import StudySpec

SAMPLER_CLASSES: dict[str, Any] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
PRUNER_CLASSES: dict[str, Any] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


def make_sampler(
    spec: StudySpec,
    *,
    grid_space: Mapping[str, Sequence[Any]] | None = None,
    seed_offset: int = 0,
) -> optuna.samplers.BaseSampler:
    """The spec's sampler. ``seed_offset`` (e.g. the worker index) keeps parallel workers
    with a seeded sampler from proposing the same trials; ``grid_space`` (parameter name ->
    values, as the objective names its parameters) is required by the grid sampler."""
    options = spec.sampler.options()
    if options.get("seed") is not None:
        options["seed"] += seed_offset
    if spec.sampler.name == "grid":
        if grid_space is None:
            raise ValueError("the grid sampler needs grid_space: parameter name -> list of values")
        return optuna.samplers.GridSampler({k: list(v) for k, v in grid_space.items()}, **options)
    return SAMPLER_CLASSES[spec.sampler.name](**options)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The spec's pruner; it reads the per-epoch validation accuracy reported at step = epoch."""
    return PRUNER_CLASSES[spec.pruner.name](**spec.pruner.options())


def grid_exhausted(study: optuna.Study) -> bool:
    """True once every point of a grid study's grid has a finished trial (Optuna's own rule)."""
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


__all__ = ["PRUNER_CLASSES", "SAMPLER_CLASSES", "grid_exhausted", "make_pruner", "make_sampler"]
