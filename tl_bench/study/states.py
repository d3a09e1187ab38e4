"""Which Optuna trial states count for what: a light module (Optuna only) that the runner and
``tl-bench doctor`` both read, so neither imports the other for a constant."""

from __future__ import annotations

from optuna.trial import TrialState

# A trial that took its share of the budget: it ran to the end or was stopped by the pruner.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

__all__ = ["FINISHED"]
