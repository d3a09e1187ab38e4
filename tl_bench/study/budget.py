"""A study's budget: how many trials, and which of their states count against it.

Optuna's ``MaxTrialsCallback(n_trials, states)`` is the model: a budget is a
number with the states that use it up. A finished trial (complete or pruned)
counts, and so does one still running somewhere (another worker's), so that
workers never start more than the budget between them; failed trials do not
count (a trial that fails is tried again, up to as many failures as the budget
had trials left: ``DatasetStudy.top_up``). Every reader of "is the budget
spent" (the runner's loop, a trial asked after the others took the budget,
the progress display, ``tl-bench doctor``) goes through this value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from tl_bench.study.states import FINISHED


@dataclass(frozen=True)
class Budget:
    """``n_trials`` trials in ``states`` (None: no limit, the time limit or the grid ends the study)."""

    n_trials: int | None
    states: tuple[TrialState, ...] = (*FINISHED, TrialState.RUNNING)

    def taken(self, trials: Iterable[FrozenTrial]) -> int:
        """How many of ``trials`` use the budget up."""
        return sum(t.state in self.states for t in trials)

    def left(self, study: optuna.Study) -> float:
        """Trials the budget still allows (infinite without a limit)."""
        if self.n_trials is None:
            return float("inf")
        return self.n_trials - len(study.get_trials(deepcopy=False, states=self.states))

    def spent(self, study: optuna.Study) -> bool:
        return self.left(study) <= 0

    def surplus(self, study: optuna.Study, number: int) -> bool:
        """Whether the trials numbered before ``number`` already take the whole budget, so trial ``number``
        (asked by a worker at the same moment as others) must not run. Fewer than ``n_trials`` trials come
        before trial ``n_trials - 1``: the storage is only read after."""
        if self.n_trials is None or number < self.n_trials:
            return False
        before = study.get_trials(deepcopy=False, states=self.states)
        return sum(t.number < number for t in before) >= self.n_trials

    def met_by(self, trials: Iterable[FrozenTrial]) -> bool:
        """Whether ``trials`` hold the whole budget of finished trials (a study that ran to its end)."""
        return self.n_trials is not None and sum(t.state in FINISHED for t in trials) >= self.n_trials


__all__ = ["Budget"]
