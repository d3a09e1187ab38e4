"""Study files: YAML in, validated StudySpec out.

``load_spec(path)`` reads a study file; ``parse_spec(data, source=path)``
validates an already-parsed mapping. Problems raise ``SpecError`` with one
line naming the file, the field path and what is accepted.
"""

from __future__ import annotations

from tl_bench.errors import SpecError
from tl_bench.spec.fields import FIXABLE_FIELDS, SEARCHABLE_FIELDS
from tl_bench.spec.keep import KeepModelsSpec
from tl_bench.spec.load import load_spec, parse_spec
from tl_bench.spec.sections import (
    COST_METRICS,
    BackboneSpec,
    BudgetSpec,
    DatasetSpec,
    ObjectiveSpec,
    PretrainSpec,
    ScreenSpec,
    SpaceSpec,
    WarmStartSpec,
)
from tl_bench.spec.ranges import CategoricalRange, FloatRange, IntRange
from tl_bench.spec.study import StudySpec
from tl_bench.spec.tuning import PRUNER_NAMES, SAMPLER_NAMES, PrunerSpec, SamplerSpec

__all__ = [
    "COST_METRICS",
    "FIXABLE_FIELDS",
    "PRUNER_NAMES",
    "SAMPLER_NAMES",
    "SEARCHABLE_FIELDS",
    "BackboneSpec",
    "BudgetSpec",
    "CategoricalRange",
    "DatasetSpec",
    "KeepModelsSpec",
    "FloatRange",
    "IntRange",
    "ObjectiveSpec",
    "PretrainSpec",
    "PrunerSpec",
    "SamplerSpec",
    "ScreenSpec",
    "SpaceSpec",
    "WarmStartSpec",
    "SpecError",
    "StudySpec",
    "load_spec",
    "parse_spec",
]
