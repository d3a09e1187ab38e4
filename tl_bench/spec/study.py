"""StudySpec: a validated study file, with its default stores beside it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, NoReturn, Sequence

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from tl_bench.errors import SpecError, did_you_mean
from tl_bench.spec.explain import spec_issue
from tl_bench.spec.identity import space_digest, study_identity
from tl_bench.spec.constraints import Constraints
from tl_bench.spec.keep import KeepModelsSpec
from tl_bench.spec.sections import (
    BudgetSpec,
    DatasetSpec,
    LatencySpec,
    ObjectiveSpec,
    PretrainSpec,
    PromoteSpec,
    SafeName,
    ScreenSpec,
    SpaceSpec,
    WarmStartSpec,
)
from tl_bench.spec.paths import is_url, resolve_storage_url, resolve_tracking_uri
from tl_bench.spec.tuning import PRUNER_NAMES, SAMPLER_NAMES, NopPrunerSpec, PrunerSpec, SamplerSpec, TPESamplerSpec

STORAGE_WORDS = "a database URL such as sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
# MLflow's bounds (mlflow/utils/validation.py), met when the study file is read rather than inside MLflow once the
# stores exist. An experiment name may have 500 characters, but MLflow's SQL columns of experiment and registered
# model names hold 256, and the registered model is ``<name>-<dataset key>``.
NAME_MAX = 200
# The description is the note tag of each parent run (MAX_TAG_VAL_LENGTH: 8000, longer values are cut) and of the
# experiment (20000); the study summary adds its lines to the run's note after it.
DESCRIPTION_MAX = 6000


class StudySpec(BaseModel):
    """One study file: which datasets, what to search, how, and where to record it."""

    model_config = ConfigDict(extra="forbid")

    name: SafeName = Field(max_length=NAME_MAX,
                           description="a name of letters, digits, '_', '.' and '-' (the MLflow experiment)")
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    datasets: list[DatasetSpec] = Field(min_length=1)
    space: SpaceSpec
    fixed: dict[str, Any] = Field(default_factory=dict)  # TrialConfig fields not searched
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    sampler: SamplerSpec = Field(
        default_factory=TPESamplerSpec,
        description=f"a sampler name or a mapping {{name, seed, ...options}}, name one of {', '.join(SAMPLER_NAMES)}",
    )
    pruner: PrunerSpec = Field(
        default_factory=NopPrunerSpec,
        description=f"a pruner name or a mapping {{name, ...options}}, name one of {', '.join(PRUNER_NAMES)}",
    )
    budget: BudgetSpec
    baselines: list[dict[str, Any]] = Field(default_factory=list)  # partial configs enqueued first
    storage: str | None = None  # Optuna storage URL; resolved to the default when left out
    tracking_uri: str | None = None  # MLflow tracking URI; resolved to the default when left out
    pretrain: dict[SafeName, PretrainSpec] = Field(default_factory=dict)
    keep_models: KeepModelsSpec = Field(default_factory=KeepModelsSpec)  # which trials keep their weights
    constraints: Constraints = Field(default_factory=Constraints)  # bounds a feasible trial's metrics meet
    latency: LatencySpec = Field(default_factory=LatencySpec)  # where and how inference latency is measured
    promote: PromoteSpec = Field(default_factory=PromoteSpec)  # when a challenger replaces the champion
    screen: ScreenSpec | None = None  # transferability screening of the (backbone, weights) candidates
    warm_start: WarmStartSpec | None = None  # configurations of finished studies enqueued first
    start: Literal["sampler", "candidates"] = Field(
        default="sampler",
        description="sampler (the sampler picks every trial) or candidates (a standard fine-tune of each "
        "(backbone, weights) candidate first)",
    )

    _source_path: Path = PrivateAttr(default_factory=lambda: Path.cwd() / "study.yaml")
    _display: str = PrivateAttr(default="study.yaml")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        # ``sampler: tpe`` / ``pruner: median`` mean ``{name: ...}`` with default options.
        if isinstance(value, dict):
            value = dict(value)
            for key in ("sampler", "pruner"):
                if isinstance(value.get(key), str):
                    value[key] = {"name": value[key]}
        return value

    @field_validator("storage")
    @classmethod
    def _storage_is_url(cls, storage: str | None) -> str | None:
        if storage is not None and not is_url(storage):
            raise spec_issue(f"{storage!r} is not a database URL", STORAGE_WORDS)
        return storage

    @model_validator(mode="after")
    def _default_stores(self, info: ValidationInfo) -> StudySpec:
        source = Path((info.context or {}).get("source") or self._source_path).absolute()
        self._source_path = source
        self._display = str((info.context or {}).get("display") or source)
        runs = source.parent / "runs"
        base = source.parent
        self.storage = resolve_storage_url(self.storage, base) if self.storage else f"sqlite:///{runs / 'optuna.db'}"
        self.tracking_uri = (
            resolve_tracking_uri(self.tracking_uri, base) if self.tracking_uri else f"sqlite:///{runs / 'mlflow.db'}"
        )
        return self

    # -- where things live -------------------------------------------------------------
    @property
    def source_path(self) -> Path:
        """Absolute path of the study file."""
        return self._source_path

    @property
    def runs_dir(self) -> Path:
        return self._source_path.parent / "runs"

    @property
    def storage_url(self) -> str:
        """Optuna storage URL (default ``sqlite:///<spec folder>/runs/optuna.db``)."""
        return self.storage or f"sqlite:///{self.runs_dir / 'optuna.db'}"

    @property
    def artifact_location(self) -> str:
        """``file://`` URI of ``runs/artifacts``, for experiments this spec creates."""
        return (self.runs_dir / "artifacts").as_uri()

    @property
    def checkpoints_dir(self) -> Path:
        """Where local pretraining keeps its checkpoints."""
        return self.runs_dir / "checkpoints"

    @property
    def cache_dir(self) -> Path:
        """Where the frozen-feature cache lives."""
        return self.runs_dir / "cache"

    # -- naming ----------------------------------------------------------------------------
    def dataset(self, key: str) -> DatasetSpec:
        """The dataset with this key (or registry name)."""
        for ds in self.datasets:
            if key in (ds.key, ds.name):
                return ds
        keys = [ds.key for ds in self.datasets]
        self.fail("datasets", f"no dataset {key!r}{did_you_mean(key, keys)}", ", ".join(keys))

    def study_name(self, dataset: DatasetSpec | str) -> str:
        """Optuna study name of one dataset: ``<spec name>/<dataset key>``."""
        key = dataset.key if isinstance(dataset, DatasetSpec) else self.dataset(dataset).key
        return f"{self.name}/{key}"

    def registered_model_name(self, dataset: DatasetSpec | str) -> str:
        """MLflow Model Registry name of one dataset study's winner: ``<spec name>-<dataset key>``."""
        key = dataset.key if isinstance(dataset, DatasetSpec) else self.dataset(dataset).key
        return f"{self.name}-{key}"

    def base_config(self, dataset: DatasetSpec | str) -> dict[str, Any]:
        """TrialConfig values shared by every trial of one dataset: its data settings and ``fixed``."""
        ds = dataset if isinstance(dataset, DatasetSpec) else self.dataset(dataset)
        return {**dataclasses.asdict(ds.data_settings), **self.latency.config_fields(), **self.fixed}

    def space_digest(self) -> str:
        """Short hash of the search space, as stores of earlier versions recorded it (``identity``
        is what a stored study is compared with now)."""
        return space_digest(self)

    def identity(self, dataset: DatasetSpec | str, fingerprint: str | None = None) -> dict[str, Any]:
        """What the dataset study on ``dataset`` is: everything that changes what a trial measures
        (``tl_bench.spec.identity``); ``fingerprint`` is the loaded dataset's when known."""
        return study_identity(self, dataset if isinstance(dataset, DatasetSpec) else self.dataset(dataset),
                              fingerprint)

    # -- overrides -------------------------------------------------------------------------
    def with_overrides(
        self,
        *,
        storage: str | None = None,
        tracking_uri: str | None = None,
        n_trials: int | None = None,
        timeout_s: float | None = None,
        datasets: Sequence[str] | None = None,
    ) -> StudySpec:
        """A copy with command-line values in place of the file's; relative paths are taken
        from the current directory, as the user typed them there. ``None`` keeps the file's value."""
        update: dict[str, Any] = {}
        cwd = Path.cwd()
        if storage is not None:
            if not is_url(storage):
                self.fail("storage", f"{storage!r} is not a database URL (from the command line)", STORAGE_WORDS)
            update["storage"] = resolve_storage_url(storage, cwd)
        if tracking_uri is not None:
            update["tracking_uri"] = resolve_tracking_uri(tracking_uri, cwd)
        if n_trials is not None or timeout_s is not None:
            if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
                self.fail("budget.n_trials", f"{n_trials!r} (from the command line)", "a positive integer")
            if timeout_s is not None and (isinstance(timeout_s, bool) or not timeout_s > 0):
                self.fail("budget.timeout_s", f"{timeout_s!r} (from the command line)", "a positive number of seconds")
            budget = {k: v for k, v in (("n_trials", n_trials), ("timeout_s", timeout_s)) if v is not None}
            update["budget"] = self.budget.model_copy(update=budget)
        if datasets is not None:
            chosen = [self.dataset(key) for key in datasets]
            update["datasets"] = list({ds.key: ds for ds in chosen}.values())
            if not update["datasets"]:
                self.fail("datasets", "no dataset chosen", ", ".join(ds.key for ds in self.datasets))
        return self.model_copy(update=update, deep=True)

    def fail(self, field: str, what: str, accepted: str) -> NoReturn:
        """Raise the SpecError of one field of this study: file, field path, what is wrong, what is accepted."""
        raise SpecError(what, accepted, source=self._display, field=field)


__all__ = ["StudySpec"]
