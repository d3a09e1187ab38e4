"""Optuna samplers and pruners from a StudySpec's plain fields.

Kept apart from ``tl_bench.spec`` so that reading a study file never imports
Optuna. Option names in the spec are the Optuna keyword arguments themselves.
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from tl_bench.spec import StudySpec
from tl_bench.spec.sections import MAXIMISED_COSTS
from tl_bench.study.mo_pruner import MOSuccessiveHalving
from tl_bench.study.feasibility import sampler_options
from tl_bench.study.workers import pid_namespace

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
    "mo_asha": MOSuccessiveHalving,  # tl-bench's own rule (``mo_rule``); Optuna's pruner is then none
}


# The grid's order and a QMC sequence's scrambling come from the seed, and the storage hands their points
# out to every process: these keep the spec's seed everywhere, and a stream of their own reseeds only the
# random choices each process makes (as Optuna does for its parallel jobs).
SHARED_SEED = ("grid", "qmc")
SAMPLER_SEED_ATTR = "sampler_seed"  # trial user attribute: the seed of the sampler that proposed it


def make_sampler(
    spec: StudySpec,
    *,
    grid_space: Mapping[str, Sequence[Any]] | None = None,
    seed_offset: int = 0,
) -> optuna.samplers.BaseSampler:
    """The spec's sampler. ``seed_offset`` (a ``sampler_stream``) keeps processes that share a study
    with a seeded sampler from proposing the same trials; ``grid_space`` (parameter name ->
    values, as the objective names its parameters) is required by the grid sampler."""
    options = {**spec.sampler.options(), **sampler_options(spec.sampler.name, bool(len(spec.constraints)))}
    seed = sampler_seed(spec, seed_offset)
    if seed is not None:
        options["seed"] = seed
    if spec.sampler.name == "grid":
        if grid_space is None:
            raise ValueError("the grid sampler needs grid_space: parameter name -> list of values")
        sampler = optuna.samplers.GridSampler({k: list(v) for k, v in grid_space.items()}, **options)
    else:
        sampler = SAMPLER_CLASSES[spec.sampler.name](**options)
    if seed_offset and spec.sampler.name in SHARED_SEED:
        sampler.reseed_rng()
    return sampler


def sampler_seed(spec: StudySpec, seed_offset: int = 0) -> int | None:
    """The seed of the sampler with stream ``seed_offset``: the spec's seed plus the stream (the spec's
    own for grid and QMC samplers, see ``SHARED_SEED``); None for an unseeded sampler."""
    seed = spec.sampler.seed
    if seed is None or spec.sampler.name in SHARED_SEED:
        return seed
    return (seed + seed_offset) % 2**32


def sampler_stream(*, created: bool, trials_before: int, worker_index: int = 0) -> int:
    """The stream of this process's sampler in a study: 0 for the process that created the study, so a
    fresh run draws from the spec's seed alone and is reproduced by the same seed; for any process that
    opened an existing study (another worker or host, a second ``tl-bench run``, a later top-up), a
    number of its own, from the trials the study held when it was opened, ``worker_index``, the host, the
    pid namespace and the pid. Two processes never draw the same configurations, and a top-up does not
    replay the run before it. Each trial records its sampler's seed (``SAMPLER_SEED_ATTR``)."""
    if created:
        return 0
    key = f"{trials_before}:{worker_index}:{socket.gethostname()}:{pid_namespace()}:{os.getpid()}"
    return zlib.crc32(key.encode()) or 1


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The spec's pruner; it reads the per-epoch validation accuracy reported at step = epoch.
    ``mo_asha`` prunes in tl-bench's own loop (``mo_rule``): Optuna's pruner is then none."""
    if spec.pruner.name == "mo_asha":
        return optuna.pruners.NopPruner()
    return PRUNER_CLASSES[spec.pruner.name](**spec.pruner.options())


# objective.cost -> the epoch metric that says what a trial has cost so far (or costs, when fixed)
_COST_SO_FAR = {"train_time_s": "elapsed_train_s", "flops_train": "elapsed_train_flops"}


def mo_rule(spec: StudySpec) -> MOSuccessiveHalving | None:
    """The multi-objective successive-halving rule of a ``pruner: mo_asha`` study, else None."""
    if spec.pruner.name != "mo_asha":
        return None
    return PRUNER_CLASSES["mo_asha"](**spec.pruner.options())


def cost_so_far(spec: StudySpec, metrics: Mapping[str, float]) -> float:
    """The study's cost of a trial at an epoch, lower is better (throughput counts negatively)."""
    cost = str(spec.objective.cost)
    value = float(metrics[_COST_SO_FAR.get(cost, cost)])
    return -value if cost in MAXIMISED_COSTS else value


def grid_exhausted(study: optuna.Study) -> bool:
    """True once every point of a grid study's grid has a finished trial (Optuna's own rule)."""
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


__all__ = ["PRUNER_CLASSES", "SAMPLER_CLASSES", "SAMPLER_SEED_ATTR", "SHARED_SEED", "cost_so_far", "grid_exhausted",
           "make_pruner", "make_sampler", "mo_rule", "sampler_seed", "sampler_stream"]
