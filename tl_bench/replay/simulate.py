"""A search strategy simulated on the recorded table: a real Optuna study in memory, no training.

Each asked configuration is answered from the table (``Table.answer``): its recorded epochs are
reported one by one to the replayed pruner, as a live trial reports them (``trial.report``, then
``should_prune`` before every epoch but the last, where stopping saves nothing), and each epoch
"run" adds its recorded seconds to the simulated wall time. A complete trial is told its recorded
objective values. As in a study run by one worker, trials run one after another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from pydantic import TypeAdapter

from tl_bench.replay.table import ReplayError, Table, check_covers, stage_counts
from tl_bench.spec import PrunerSpec, SamplerSpec, StudySpec
from tl_bench.study.samplers import grid_exhausted, make_pruner, make_sampler
from tl_bench.study.space import SearchSpace

REPLAYED_SAMPLERS = ("tpe", "random", "grid", "gp", "qmc")
REPLAYED_PRUNERS = ("none", "median", "successive_halving", "hyperband")
# A replay bounded by seconds alone stops after this many trials per configuration of the table.
_TRIALS_PER_CONFIG = 20


@dataclass(frozen=True)
class SimTrial:
    """One simulated (or recorded) trial: what it ran, how it ended, what it cost."""

    number: int
    config: str  # the configuration in words
    state: str  # COMPLETE or PRUNED
    epochs: int  # epochs run
    seconds: float  # what those epochs cost
    val_acc: float  # validation accuracy at its last epoch run


@dataclass(frozen=True)
class Search:
    """One strategy's sequence of trials: the study as recorded, or one replayed seed."""

    strategy: str  # "recorded" or "<sampler>+<pruner>"
    seed: int | None
    trials: tuple[SimTrial, ...]

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.trials)


def recorded_search(table: Table, strategy: str = "recorded") -> Search:
    """The study as it ran: its recorded trials in order, each charged the epochs it ran."""
    trials = tuple(SimTrial(r.trial, r.label, "COMPLETE" if r.complete else "PRUNED", len(r.acc), sum(r.costs),
                            r.final_acc) for r in table.records)
    return Search(strategy, None, trials)


def replay_spec(spec: StudySpec, sampler: str, pruner: str, seed: int) -> StudySpec:
    """``spec`` with the replayed sampler (seeded with ``seed``) and pruner; options are the spec's own where
    it names the same sampler or pruner, else Optuna's defaults."""
    if sampler not in REPLAYED_SAMPLERS:
        raise ReplayError(f"sampler {sampler!r} is not replayed", ", ".join(REPLAYED_SAMPLERS))
    if pruner not in REPLAYED_PRUNERS:
        raise ReplayError(f"pruner {pruner!r} is not replayed", ", ".join(REPLAYED_PRUNERS))
    if pruner != "none" and spec.objective.is_multi:
        raise ReplayError(f"pruner {pruner!r} judges one value; this study has a cost objective too",
                          "--pruner none for a multi-objective study")
    if spec.sampler.name == sampler:
        chosen = spec.sampler.model_copy(update={"seed": seed})
    else:
        chosen = TypeAdapter(SamplerSpec).validate_python({"name": sampler, "seed": seed})
    pruned = spec.pruner if spec.pruner.name == pruner else TypeAdapter(PrunerSpec).validate_python({"name": pruner})
    return spec.model_copy(update={"sampler": chosen, "pruner": pruned})


def first_seed(spec: StudySpec, sampler: str) -> int:
    """The first replay seed: the study's own sampler seed when it is the same sampler (so the first
    replay repeats the study), else 0."""
    return spec.sampler.seed if spec.sampler.name == sampler and spec.sampler.seed is not None else 0


def simulate(table: Table, spec: StudySpec, *, sampler: str, pruner: str = "none", seed: int = 0,
             n_trials: int | None = None, budget_s: float | None = None) -> Search:
    """Replay ``sampler`` (seeded ``seed``) and ``pruner`` on ``table``: until ``n_trials`` trials, or
    ``budget_s`` simulated seconds, or an exhausted grid; ``n_trials`` defaults to the study's own count
    when no budget is given."""
    replayed = replay_spec(spec, sampler, pruner, seed)
    check_covers(table, replayed)
    space = SearchSpace(replayed, stage_counts(table, spec))
    if n_trials is None:
        n_trials = len(table.records) if budget_s is None else _TRIALS_PER_CONFIG * max(1, len(table.by_config))
    with _quiet_optuna():
        study = optuna.create_study(
            directions=replayed.objective.directions,
            sampler=make_sampler(replayed, grid_space=space.grid_space() if space.grid else None),
            pruner=make_pruner(replayed))
        reporting = pruner != "none"
        asked: dict[tuple[str, ...], int] = {}
        trials: list[SimTrial] = []
        seconds = 0.0
        while len(trials) < n_trials and (budget_s is None or seconds < budget_s):
            trial = study.ask()
            values = space.suggest(trial, {})
            done = _run(table, study, trial, values, asked, reporting)
            trials.append(done)
            seconds += done.seconds
            if grid_exhausted(study):
                break
    return Search(f"{sampler}+{pruner}", seed, tuple(trials))


def replay_seeds(table: Table, spec: StudySpec, *, sampler: str, pruner: str = "none", seeds: int = 1,
                 n_trials: int | None = None, budget_s: float | None = None) -> list[Search]:
    """``simulate`` once per seed, from ``first_seed`` on."""
    start = first_seed(spec, sampler)
    return [simulate(table, spec, sampler=sampler, pruner=pruner, seed=start + k, n_trials=n_trials, budget_s=budget_s)
            for k in range(seeds)]


def _run(table: Table, study: optuna.Study, trial: optuna.Trial, values: dict[str, Any],
         asked: dict[tuple[str, ...], int], reporting: bool) -> SimTrial:
    """One asked configuration answered from the table, epoch by epoch, then told."""
    key = table.key(values)
    nth = asked.get(key, 0)
    asked[key] = nth + 1
    record = table.answer(values, nth, 1)
    planned = int(values.get("epochs") or record.epochs)  # a pruner is not asked after the planned last epoch
    seconds, epoch = 0.0, 0
    while epoch < len(record.acc) or not record.complete:
        epoch += 1
        if epoch > len(record.acc):  # pruned there in the study: another record of it ran further
            record = table.answer(values, nth, epoch)
        acc = record.acc[epoch - 1]
        seconds += record.costs[epoch - 1]
        if reporting:
            trial.report(acc, epoch)
            if epoch < planned and trial.should_prune():
                _tell(study, trial, state=TrialState.PRUNED)
                return SimTrial(trial.number, table.label(values), "PRUNED", epoch, seconds, acc)
    assert record.values is not None  # a complete record
    _tell(study, trial, list(record.values))
    return SimTrial(trial.number, table.label(values), "COMPLETE", epoch, seconds, record.final_acc)


def _tell(study: optuna.Study, trial: optuna.Trial, *args: Any, **kwargs: Any) -> None:
    """``study.tell``; the grid sampler's ``study.stop()`` after its last point raises outside
    ``optimize`` once the trial is stored, and the loop ends on ``grid_exhausted`` instead."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines off while a replay runs its hundreds of in-memory trials."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


__all__ = ["REPLAYED_PRUNERS", "REPLAYED_SAMPLERS", "Search", "SimTrial", "first_seed", "recorded_search",
           "replay_seeds", "replay_spec", "simulate"]
