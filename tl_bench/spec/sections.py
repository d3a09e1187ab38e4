"""The sections of a study file: datasets, search space, objective, budget, pretraining.

Relative paths resolve against the study file's folder, passed by the loader
as validation context ``{"base_dir": Path}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tl_bench.config import Adaptation, DataSettings
from tl_bench.spec.explain import spec_issue
from tl_bench.spec.paths import absolute_weights_path, dataset_key, resolve_dataset_name, resolve_path
from tl_bench.spec.ranges import HyperRange
from tl_bench.spec.schema_words import NAME_PATTERN

SafeName = Annotated[str, Field(pattern=NAME_PATTERN)]
# FreezeDepth (tl_bench.config) as a study file may write it: no bool, no "3" for 3, no negative depth
StrictFreezeDepth = Union[Annotated[StrictInt, Field(ge=0)], Literal["all"]]
COST_METRICS = {
    # objective.cost -> the TrialResult field it minimises
    "train_time_s": "train_time_s",
    "flops_train": "train_flops_total",
    "params_trainable": "params_trainable",
    "adapter_mb": "adapter_mb",
    "latency_ms": "latency_ms",
    "infer_ips": "infer_ips",
}
MAXIMISED_COSTS = frozenset({"infer_ips"})  # a cost whose higher values are better (throughput)
# written in a study file as objective.cost; Literal[...] of the keys, so the schema lists them
CostMetric = Literal[tuple(COST_METRICS)]  # type: ignore[valid-type]
_DATASET_WORDS = "a dataset name: digits, shapes, imagefolder:PATH or torchvision:NAME"


def _base_dir(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("base_dir") or Path.cwd())


class _Named(BaseModel):
    """A section that may be written as its bare name: ``digits`` means ``{name: digits}``."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class DatasetSpec(_Named):
    """One target (or pretraining source) dataset and how it is split."""

    accepted_text: ClassVar[str] = (
        "a dataset name or a mapping with keys name, key, img_size, train_size, val_size, "
        "split_seed, root, download, options"
    )

    name: str = Field(description=_DATASET_WORDS)
    key: SafeName | None = Field(default=None, validate_default=True)  # derived from name when left out
    img_size: PositiveInt = 32
    train_size: PositiveInt | None = None  # stratified limit on the training split
    val_size: PositiveInt | None = None
    split_seed: int = 0
    root: str | None = None  # data folder (torchvision downloads, caches); absolute after loading
    download: bool = False
    options: dict[str, Any] = Field(default_factory=dict)  # dataset extras, e.g. shapes' num_classes

    @field_validator("name")
    @classmethod
    def _resolve_name(cls, name: str, info: ValidationInfo) -> str:
        if not name.strip():
            raise spec_issue("empty dataset name", _DATASET_WORDS)
        return resolve_dataset_name(name.strip(), _base_dir(info))

    @field_validator("key")
    @classmethod
    def _default_key(cls, key: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("name")
        return key if key is not None or name is None else dataset_key(name)

    @field_validator("root")
    @classmethod
    def _resolve_root(cls, root: str | None, info: ValidationInfo) -> str | None:
        return None if root is None else resolve_path(root, _base_dir(info))

    @property
    def data_settings(self) -> DataSettings:
        """How this dataset is loaded and split, as every trial on it receives it."""
        return DataSettings(
            dataset=self.name,
            img_size=self.img_size,
            train_size=self.train_size,
            val_size=self.val_size,
            split_seed=self.split_seed,
            data_root=self.root,
            download=self.download,
            dataset_options=dict(self.options),
        )


class BackboneSpec(_Named):
    """A timm backbone and the weights to try it with."""

    accepted_text: ClassVar[str] = "a timm model name or a mapping {name, weights}"

    name: str = Field(description="a timm model name (tl-bench list backbones)")
    weights: list[str] = Field(default_factory=lambda: ["scratch"], min_length=1)

    @field_validator("weights")
    @classmethod
    def _resolve(cls, weights: list[str], info: ValidationInfo) -> list[str]:
        resolved = [absolute_weights_path(w.strip(), _base_dir(info)) for w in weights]
        for i, w in enumerate(resolved):
            if w in resolved[:i]:
                raise spec_issue(f"weights {weights[i]!r} listed twice", "each weights choice once")
        return resolved


class SpaceSpec(BaseModel):
    """The ``space:`` section: what Optuna searches. Keys other than the four lists are TrialConfig
    hyperparameters."""

    model_config = ConfigDict(extra="forbid")
    accepted_text: ClassVar[str] = (
        "a mapping with keys backbones, freeze_depth, adaptation, neck, head and searchable TrialConfig fields"
    )
    # ``hyper`` is not written in YAML: the loader gathers the hyperparameter keys into it.
    flattened_fields: ClassVar[frozenset[str]] = frozenset({"hyper"})
    _LISTS: ClassVar[tuple[str, ...]] = ("backbones", "freeze_depth", "adaptation", "neck", "head")

    backbones: list[BackboneSpec] = Field(min_length=1)
    freeze_depth: list[StrictFreezeDepth] = Field(default_factory=lambda: [0], min_length=1)
    # what trains inside the frozen stages (tl_bench/models/adaptation.py); full: nothing
    adaptation: list[Adaptation] = Field(default_factory=lambda: ["full"], min_length=1)
    neck: list[str] = Field(default_factory=lambda: ["gap"], min_length=1)
    head: list[str] = Field(default_factory=lambda: ["linear"], min_length=1)
    hyper: dict[str, HyperRange] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather_hyper(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        lists = {k: v for k, v in value.items() if k in cls._LISTS}
        hyper = {k: v for k, v in value.items() if k not in cls._LISTS}
        if isinstance(hyper.get("hyper"), dict):  # a dumped SpaceSpec validates back unchanged
            hyper = {**hyper.pop("hyper"), **hyper}
        return {**lists, "hyper": hyper}

    @field_validator("backbones", "freeze_depth", "adaptation", "neck", "head")
    @classmethod
    def _distinct(cls, values: list[Any], info: ValidationInfo) -> list[Any]:
        keys = [v.name if isinstance(v, BackboneSpec) else v for v in values]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                once = "each backbone once, with all its weights in one list"
                raise spec_issue(f"{key!r} listed twice", once if info.field_name == "backbones" else "each choice once")
        return values

    @property
    def searched_names(self) -> list[str]:
        """Names of every searched TrialConfig field."""
        return ["backbone", "weights", "freeze_depth", "adaptation", "neck", "head", *self.hyper]

    def backbone(self, name: str) -> BackboneSpec | None:
        return next((b for b in self.backbones if b.name == name), None)


class PretrainSpec(BaseModel):
    """Supervised pretraining on a source dataset, usable as weights ``local:NAME``.

    It applies to whichever backbone names ``local:NAME``: one checkpoint per
    (backbone, these settings)."""

    model_config = ConfigDict(extra="forbid")

    dataset: DatasetSpec
    epochs: PositiveInt = 5
    lr: PositiveFloat = 2.0e-3
    weight_decay: NonNegativeFloat = 1.0e-4
    batch_size: PositiveInt = 64
    seed: int = 0


class LatencySpec(BaseModel):
    """Where a trial's inference latency is measured: on the training device (``auto``) or
    another one (``cpu`` for a CPU deployment of a model trained on a GPU), with ``threads``
    CPU threads (None: torch's count), at each of ``batch_sizes``."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    threads: PositiveInt | None = None
    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1, 32], min_length=1, max_length=8)

    def config_fields(self) -> dict[str, Any]:
        """The TrialConfig fields this section sets."""
        return {"latency_device": self.device, "latency_threads": self.threads,
                "latency_batch_sizes": tuple(sorted(set(self.batch_sizes)))}


class PromoteSpec(BaseModel):
    """When a challenger (a better setting after a top-up, a soup, an ensemble) replaces
    the champion (a refit stays a challenger: it trained on the validation images the gate reads): ``lcb`` (its setting's lower bound on validation accuracy exceeds the champion's
    mean), ``paired_bootstrap`` (the 95% interval of the accuracy difference on the same validation
    images lies above zero) or ``always``."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["lcb", "paired_bootstrap", "always"] = "lcb"


class ObjectiveSpec(BaseModel):
    """Validation accuracy, maximised; optionally a cost, minimised (Pareto front)."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["val_acc"] = "val_acc"
    cost: CostMetric | None = None

    @property
    def directions(self) -> list[str]:
        if self.cost is None:
            return ["maximize"]
        return ["maximize", "maximize" if self.cost in MAXIMISED_COSTS else "minimize"]

    @property
    def metrics(self) -> list[str]:
        """TrialResult fields giving Optuna's values, in order."""
        return [self.metric] if self.cost is None else [self.metric, COST_METRICS[self.cost]]

    @property
    def is_multi(self) -> bool:
        return self.cost is not None


class ScreenSpec(BaseModel):
    """Transferability screening before the search: score every (backbone, weights) candidate
    from its frozen features and, with ``keep``, search only the best ``keep`` of them."""

    model_config = ConfigDict(extra="forbid")

    # k-NN by default: an accuracy on the validation split the search is judged on, with no linear-
    # Gaussian model of the features to trust; either score is worth keeping only where it beats the
    # static rankers (screen.tau_params, screen.tau_flops) the study summary logs beside it.
    score: Literal["logme", "knn"] = "knn"
    keep: PositiveInt | None = None  # None: score every candidate, drop none
    # Input size of the screening features: the dataset's (what the search trains at; the features
    # are the ones a later linear probe reuses from the cache), or each backbone's pretrained input
    # size from timm's pretrained config (scores then see features at the resolution the weights
    # learned; the cache keeps them apart, by size).
    img_size: Literal["dataset", "pretrained"] = "dataset"


class WarmStartSpec(BaseModel):
    """Start a new study from what won elsewhere: the ``top_k`` best configurations of each source
    study in the same storage are enqueued before the search (``from``: Optuna study names
    ``SPEC/DATASET``, or ``same_store`` for every other study there)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sources: Union[list[str], Literal["same_store"]] = Field(
        alias="from", description="a list of Optuna study names SPEC/DATASET, or same_store")
    top_k: PositiveInt = 3


class BudgetSpec(BaseModel):
    """Per dataset study: finished trials to reach, and/or seconds to spend."""

    model_config = ConfigDict(extra="forbid")

    n_trials: PositiveInt | None = None
    timeout_s: PositiveFloat | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSpec:
        if self.n_trials is None and self.timeout_s is None:
            raise spec_issue("no limit set", "n_trials, timeout_s or both")
        return self


__all__ = [
    "COST_METRICS",
    "BackboneSpec",
    "BudgetSpec",
    "DatasetSpec",
    "ObjectiveSpec",
    "PretrainSpec",
    "SafeName",
    "ScreenSpec",
    "SpaceSpec",
    "StrictFreezeDepth",
    "LatencySpec",
    "PromoteSpec",
    "WarmStartSpec",
]
