"""What one ``tl-bench run`` invocation decides, and what it returns per dataset study."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tl_bench.spec import StudySpec
    from tl_bench.tracking import Tracker


@dataclass
class RunOptions:
    """What the command line decides for one ``tl-bench run`` (the study file decides the rest)."""

    n_trials: int | None = None  # finished trials per dataset study (None = the spec's budget)
    timeout_s: float | None = None  # wall clock per dataset study in this invocation
    workers: int = 1
    worker_index: int = 0  # seeds the sampler differently in each worker
    devices: list[str] | None = None  # CUDA device ids the workers are spread over (None: every visible one)
    dask: str | None = None  # "local" or a Dask scheduler address: the workers run as Dask tasks
    gpus_per_worker: int = 0  # GPU resources each Dask task asks for
    track: bool = True  # False switches MLflow off (benchmarks)
    summarize: bool = True  # write the study summary to the parent run at the end
    # Go on with a stored study although the study file now measures something else (recorded in the study).
    continue_changed: bool = False
    # Called by whichever process summarises a study, after the summary: the caller's dashboard. A plain
    # module-level function, so that workers started as Dask tasks can be handed it too.
    on_summary: SummaryCallback | None = None


@dataclass
class DatasetOutcome:
    dataset: str
    study_name: str
    parent_run_id: str
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the distinct errors its failed trials were recorded with


# (spec, tracker, dataset key, parent run id): plain values, so the report side needs nothing of ``study``.
SummaryCallback = Callable[["StudySpec", "Tracker", str, str], None]

__all__ = ["DatasetOutcome", "RunOptions", "SummaryCallback"]
