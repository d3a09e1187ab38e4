"""The recorded table of a finished study: for each configuration, its per-epoch accuracy and cost.

A configuration is what the search space decides for a trial (backbone, weights, freeze depth, neck,
head, adaptation and the searched hyperparameters), written as the text MLflow keeps for each param.
Each trial that completed or was pruned becomes one ``Record``: its validation accuracy at every
epoch it ran (the run's ``epoch_val_acc``), the seconds each of those epochs cost (from the per-epoch
cost so far when recorded, else the trial's ``train_time_s`` spread evenly over its epochs) and, when
it completed, its objective values. A replay answers every configuration its sampler asks for from
here instead of training.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from optuna.trial import FixedTrial

from tl_bench.errors import TLBenchError
from tl_bench.spec import StudySpec
from tl_bench.spec.tuning import GridSamplerSpec
from tl_bench.study.space import SearchSpace
from tl_bench.tracking import KIND_TRIAL, read_runs
from tl_bench.tracking.curves import ELAPSED, epoch_curves

# The parts of a configuration that the space decides for every trial; the searched hyperparameters follow.
PARTS = ("backbone", "weights", "freeze_depth", "neck", "head", "adaptation")
RECORDED_STATES = ("COMPLETE", "PRUNED")


class ReplayError(TLBenchError):
    """A study that cannot be replayed: a configuration without a recorded trial, a space a table cannot cover."""


def config_key(values: Mapping[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """A configuration as comparable text: numbers as floats (``"0.001"`` and ``0.001`` meet), the rest as text."""
    return tuple(_text(values.get(name, "full" if name == "adaptation" else None)) for name in names)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    try:
        return repr(float(str(value)))
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class Record:
    """One recorded trial: what it ran and what each of its epochs gave and cost."""

    trial: int
    config: tuple[str, ...]
    label: str  # the configuration in words: "backbone=test_resnet weights=scratch ..."
    complete: bool
    acc: tuple[float, ...]  # validation accuracy of epochs 1..len(acc)
    costs: tuple[float, ...]  # seconds of each of those epochs
    epochs: int  # the epochs the trial was set to run
    values: tuple[float, ...] | None  # Optuna's values of a complete trial (the objective's metrics)

    @property
    def final_acc(self) -> float:
        return self.acc[-1] if self.acc else math.nan


@dataclass
class Table:
    """Every recorded trial of one study and dataset, by configuration."""

    study: str
    dataset: str
    names: tuple[str, ...]  # the fields of a configuration: PARTS, then the searched hyperparameters
    records: list[Record]  # in trial order
    n_stages: dict[str, int] = field(default_factory=dict)  # backbone -> its stage count, as recorded
    by_config: dict[tuple[str, ...], list[Record]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_config = {}
        for record in self.records:
            self.by_config.setdefault(record.config, []).append(record)

    @property
    def best_val_acc(self) -> float:
        """The best validation accuracy a complete trial of the table reached."""
        finals = [r.final_acc for r in self.records if r.complete and not math.isnan(r.final_acc)]
        return max(finals) if finals else math.nan

    def key(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        return config_key(values, self.names)

    def label(self, values: Mapping[str, Any]) -> str:
        return " ".join(f"{name}={values.get(name, 'full')}" for name in self.names)

    def answer(self, values: Mapping[str, Any], nth: int, epochs: int) -> Record:
        """The record that answers the ``nth`` (0-based) ask of a configuration: its recorded trials in
        turn, or, when that one stopped before ``epochs``, one of them that ran that far."""
        found = self.by_config.get(self.key(values), [])
        if not found:
            raise ReplayError(f"configuration {self.label(values)} has no recorded trial in study "
                              f"{self.study!r} on {self.dataset!r}", "a study whose every configuration ran")
        record = found[nth % len(found)]
        if len(record.acc) >= epochs:
            return record
        longer = [r for r in found if len(r.acc) >= epochs]
        if not longer:
            raise ReplayError(f"configuration {self.label(values)} was recorded for {len(record.acc)} epoch(s) "
                              f"only (pruned in the study); the replay needs epoch {epochs}",
                              "a replay whose pruner stops it as early, or a study where it completed")
        return longer[0]


def configurations(spec: StudySpec, stage_counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every configuration the spec's space can give a trial, as TrialConfig field values; a
    ``ReplayError`` for a hyperparameter searched over a range, which no table can cover."""
    for name, rng in spec.space.hyper.items():
        if getattr(rng, "choices", None) is None:
            raise ReplayError(f"{name} is searched over a range ({rng.words()}): a replayed sampler can ask for "
                              "values no trial ran", "a space of choices only (a list under space)")
    grid = SearchSpace(spec.model_copy(update={"sampler": GridSamplerSpec(name="grid")}), dict(stage_counts))
    points = grid.grid_space()
    names = list(points)
    return [grid.suggest(FixedTrial(dict(zip(names, point))), {}) for point in itertools.product(*points.values())]


def check_covers(table: Table, spec: StudySpec) -> None:
    """A ``ReplayError`` naming the first configuration of the spec's space with no recorded trial."""
    for values in configurations(spec, stage_counts(table, spec)):
        if table.key(values) not in table.by_config:
            raise ReplayError(f"configuration {table.label(values)} has no recorded trial in study {table.study!r} "
                              f"on {table.dataset!r}: the replayed sampler could ask for it",
                              "a study searched completely (a grid, or every configuration run)")


def stage_counts(table: Table, spec: StudySpec) -> dict[str, int]:
    """Each backbone's stage count: as its trials recorded it, else asked of the model registry."""
    counts = dict(table.n_stages)
    missing = [b.name for b in spec.space.backbones if b.name not in counts]
    if missing:
        from tl_bench.models import count_stages

        counts.update({name: count_stages(name) for name in missing})
    return counts


def read_table(spec: StudySpec, dataset: str) -> Table:
    """The recorded trials of ``spec``'s study on ``dataset``, read from its MLflow store."""
    runs = read_runs(spec.tracking_uri, kind=KIND_TRIAL, study=spec.name, dataset=dataset, finished_only=False)
    if len(runs):
        runs = runs[(runs["study"] == spec.name) & (runs["dataset"] == dataset) & runs["state"].isin(RECORDED_STATES)]
    if not len(runs):
        raise ReplayError(f"study {spec.name!r} has no complete or pruned trial on {dataset!r} in {spec.tracking_uri}",
                          "a study that has run (tl-bench run)")
    runs = runs.assign(trial=pd.to_numeric(runs["trial"], errors="coerce")).sort_values("trial", kind="stable")
    runs = runs.drop_duplicates("trial")  # repairs may leave two runs for one trial
    names = (*PARTS, *spec.space.hyper)
    curves = epoch_curves(spec.tracking_uri, runs["run_id"])
    metrics = spec.objective.metrics
    records = [_record(row, names, curves[row["run_id"]], metrics) for _, row in runs.iterrows()]
    records = _spread_unknown_costs(records)
    n_stages = {}
    for _, row in runs.iterrows():
        stages = pd.to_numeric(pd.Series([row.get("metrics.n_stages"), row.get("n_stages_tag")]), errors="coerce")
        if stages.notna().any():
            n_stages[str(row["params.backbone"])] = int(stages.dropna().iloc[0])
    return Table(spec.name, dataset, names, records, n_stages)


def _record(row: pd.Series, names: Sequence[str], curves: Mapping[str, Mapping[int, float]],
            metrics: Sequence[str]) -> Record:
    params = {name: row.get("params." + name) for name in names}
    if pd.isna(params.get("adaptation")):
        params["adaptation"] = "full"  # runs from before adaptation methods trained no method
    acc_by_epoch = curves["val_acc"]
    n = 0
    while n + 1 in acc_by_epoch:
        n += 1
    acc = tuple(acc_by_epoch[e] for e in range(1, n + 1))
    complete = row["state"] == "COMPLETE"
    planned = pd.to_numeric(pd.Series([row.get("params.epochs")]), errors="coerce").iloc[0]
    epochs = int(planned) if pd.notna(planned) else n
    elapsed = curves[ELAPSED]
    if n and all(e in elapsed for e in range(1, n + 1)):
        so_far = [0.0] + [elapsed[e] for e in range(1, n + 1)]
        costs = tuple(max(0.0, b - a) for a, b in zip(so_far, so_far[1:]))
    elif complete and n and pd.notna(row.get("metrics.train_time_s")):
        costs = (float(row["metrics.train_time_s"]) / n,) * n
    else:
        costs = (math.nan,) * n  # spread afterwards from the table's other trials
    values = None
    if complete:
        values = tuple(float(row.get("metrics." + m, math.nan)) for m in metrics)
    label = " ".join(f"{name}={params[name]}" for name in names)
    return Record(int(row["trial"]), config_key(params, names), label, complete, acc, costs, epochs, values)


def _spread_unknown_costs(records: list[Record]) -> list[Record]:
    """A record without a cost of its own (a pruned trial that recorded no per-epoch cost) takes the mean
    epoch cost of its configuration's other records, else of the whole table."""
    known = [c for r in records for c in r.costs if not math.isnan(c)]
    overall = sum(known) / len(known) if known else 0.0
    out = []
    for record in records:
        if record.costs and math.isnan(record.costs[0]):
            same = [c for r in records if r.config == record.config for c in r.costs if not math.isnan(c)]
            epoch_cost = sum(same) / len(same) if same else overall
            record = Record(record.trial, record.config, record.label, record.complete, record.acc,
                            (epoch_cost,) * len(record.acc), record.epochs, record.values)
        out.append(record)
    return out


__all__ = ["PARTS", "Record", "ReplayError", "Table", "check_covers", "config_key", "configurations", "read_table",
           "stage_counts"]
