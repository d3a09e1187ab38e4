"""Sampler and pruner choices as plain values.

Each option is named exactly as the keyword argument of the Optuna class it
configures, with Optuna's own default (``options()`` returns them), so building
the object is one call and this module needs no Optuna import.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt


class _Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def options(self) -> dict[str, Any]:
        """Keyword arguments of the Optuna class, defaults included."""
        return self.model_dump(exclude={"name"})


class TPESamplerSpec(_Choice):
    name: Literal["tpe"] = "tpe"
    seed: int | None = None
    n_startup_trials: NonNegativeInt = 10
    n_ei_candidates: PositiveInt = 24
    multivariate: bool | None = None  # None: Optuna decides (multivariate for one objective)
    group: bool = False
    constant_liar: bool = True  # keeps parallel workers from proposing the same point


class RandomSamplerSpec(_Choice):
    name: Literal["random"]
    seed: int | None = None


class GridSamplerSpec(_Choice):
    name: Literal["grid"]
    seed: int | None = None


class NSGAIISamplerSpec(_Choice):
    name: Literal["nsga2"]
    seed: int | None = None
    population_size: int = Field(default=50, ge=2)
    mutation_prob: float | None = Field(default=None, ge=0, le=1)
    crossover_prob: float = Field(default=0.9, ge=0, le=1)
    swapping_prob: float = Field(default=0.5, ge=0, le=1)


class GPSamplerSpec(_Choice):
    name: Literal["gp"]
    seed: int | None = None
    n_startup_trials: NonNegativeInt = 10
    deterministic_objective: bool = False


class QMCSamplerSpec(_Choice):
    name: Literal["qmc"]
    seed: int | None = None
    qmc_type: Literal["sobol", "halton"] = "sobol"
    scramble: bool = False


SamplerSpec = Annotated[
    Union[TPESamplerSpec, RandomSamplerSpec, GridSamplerSpec, NSGAIISamplerSpec, GPSamplerSpec, QMCSamplerSpec],
    Field(discriminator="name"),
]


class NopPrunerSpec(_Choice):
    name: Literal["none"] = "none"


class MedianPrunerSpec(_Choice):
    name: Literal["median"]
    n_startup_trials: NonNegativeInt = 5
    n_warmup_steps: NonNegativeInt = 0  # epochs before pruning may start
    interval_steps: PositiveInt = 1
    n_min_trials: PositiveInt = 1


class SuccessiveHalvingPrunerSpec(_Choice):
    name: Literal["successive_halving"]
    min_resource: Union[PositiveInt, Literal["auto"]] = "auto"  # epochs
    reduction_factor: int = Field(default=4, ge=2)
    min_early_stopping_rate: NonNegativeInt = 0
    bootstrap_count: NonNegativeInt = 0


class HyperbandPrunerSpec(_Choice):
    name: Literal["hyperband"]
    min_resource: PositiveInt = 1  # epochs
    max_resource: Union[PositiveInt, Literal["auto"]] = "auto"
    reduction_factor: int = Field(default=3, ge=2)
    bootstrap_count: NonNegativeInt = 0


class MOSuccessiveHalvingSpec(_Choice):
    """tl-bench's own pruner for studies with a cost (``study.mo_pruner``): at rung epochs
    ``min_epochs * reduction_factor**k`` a trial dominated on (validation accuracy, cost so far)
    and outside the best ``1/reduction_factor`` of the trials at that rung stops."""

    name: Literal["mo_asha"]
    min_epochs: PositiveInt = 1
    reduction_factor: int = Field(default=3, ge=2)


PrunerSpec = Annotated[
    Union[NopPrunerSpec, MedianPrunerSpec, SuccessiveHalvingPrunerSpec, HyperbandPrunerSpec, MOSuccessiveHalvingSpec],
    Field(discriminator="name"),
]

SAMPLER_NAMES = ("tpe", "random", "grid", "nsga2", "gp", "qmc")
PRUNER_NAMES = ("none", "median", "successive_halving", "hyperband", "mo_asha")

__all__ = [
    "PRUNER_NAMES",
    "SAMPLER_NAMES",
    "GPSamplerSpec",
    "GridSamplerSpec",
    "HyperbandPrunerSpec",
    "MedianPrunerSpec",
    "MOSuccessiveHalvingSpec",
    "NSGAIISamplerSpec",
    "NopPrunerSpec",
    "PrunerSpec",
    "QMCSamplerSpec",
    "RandomSamplerSpec",
    "SamplerSpec",
    "SuccessiveHalvingPrunerSpec",
    "TPESamplerSpec",
]
