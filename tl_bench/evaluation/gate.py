"""The promotion gate: a challenger replaces the champion only when the evidence says it is better.

Rules (``RULES``):

- ``lcb``: the challenger setting's ``val_acc_lcb`` (the leaderboard's bound, ``tl_bench.ranking``)
  exceeds the champion setting's mean validation accuracy. Seed noise alone cannot pass it.
- ``paired_bootstrap``: both models' per-image correctness on the same validation images; the
  95 % percentile interval of the accuracy difference, over seeded resamples of the images, lies
  above zero. Images both models get right (or wrong) carry no evidence, which is what makes the
  paired test sharper than comparing two accuracies.
- ``always``: the challenger is promoted (a manual override, said so in the reason).

With no champion yet, every rule promotes. Equal evidence never promotes: each rule asks for a
strict improvement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from tl_bench.errors import TLBenchError, did_you_mean
from tl_bench.evaluation.metrics import as_numpy
from tl_bench.ranking import rank_trials

RULES = ("lcb", "paired_bootstrap", "always")
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95


class GateError(TLBenchError):
    """A promotion rule that is unknown, or evidence a rule needs that is missing or malformed."""


@dataclass(frozen=True)
class SettingScore:
    """A setting's validation accuracy as the ranking sees it: the mean over seeds, their count and
    the lower confidence bound (a leaderboard row's ``val_acc``, ``n_seeds``, ``val_acc_lcb``, or a
    registered version's ``setting_val_acc_mean``, ``setting_n_seeds``, ``setting_val_acc_lcb``)."""

    val_acc: float
    n_seeds: int
    val_acc_lcb: float

    @classmethod
    def of_seeds(cls, val_accs: Sequence[float]) -> SettingScore:
        """The score of one setting from its seeds' validation accuracies, by ``ranking.rank_trials``
        (its own seed spread; a leaderboard row pools the spread over its study's settings)."""
        if not val_accs:
            raise GateError("a setting score needs at least one seed's validation accuracy")
        trials = pd.DataFrame({"setting": 0, "seed": range(len(val_accs)), "val_acc": list(val_accs),
                               "trial": range(len(val_accs))})
        row = rank_trials(trials).iloc[0]
        return cls(float(row["val_acc"]), int(row["n_seeds"]), float(row["val_acc_lcb"]))


@dataclass(frozen=True)
class Decision:
    """Whether to promote, by which rule, why in one line, and the numbers the reason quotes."""

    promote: bool
    rule: str
    reason: str
    numbers: dict[str, float] = field(default_factory=dict)


def lcb_gate(challenger: SettingScore, champion: SettingScore | None) -> Decision:
    """Promote when the challenger's bound exceeds the champion's mean."""
    if champion is None:
        return _no_champion("lcb")
    promote = challenger.val_acc_lcb > champion.val_acc
    reason = (f"lcb: challenger val_acc lcb {challenger.val_acc_lcb:.4f} (mean {challenger.val_acc:.4f} over "
              f"{challenger.n_seeds} seed(s)) {'>' if promote else '<='} champion mean {champion.val_acc:.4f}"
              f" -> {'promote' if promote else 'keep the champion'}")
    return Decision(promote, "lcb", reason, {"challenger_lcb": challenger.val_acc_lcb,
                                              "challenger_mean": challenger.val_acc, "champion_mean": champion.val_acc})


def paired_bootstrap_gate(
    challenger_correct: torch.Tensor | npt.ArrayLike,
    champion_correct: torch.Tensor | npt.ArrayLike | None,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = BOOTSTRAP_LEVEL,
) -> Decision:
    """Promote when the ``level`` percentile interval of the accuracy difference (challenger minus
    champion) over ``n_resamples`` paired resamples of the images lies above zero.

    The correctness vectors are booleans, one per validation image, in the same image order. A
    resample's difference depends only on how many images of each kind (challenger alone right,
    champion alone right, neither or both) it draws, so resamples are drawn as multinomial counts
    of those three kinds: the same distribution as drawing images, in O(n_resamples) memory.
    """
    if champion_correct is None:
        return _no_champion("paired_bootstrap")
    a, b = _correctness(challenger_correct, "challenger"), _correctness(champion_correct, "champion")
    if len(a) != len(b):
        raise GateError(f"correctness vectors differ in length ({len(a)} challenger, {len(b)} champion images)",
                        "both models' results on the same validation images, in the same order")
    n = len(a)
    wins, losses = int(np.sum(a & ~b)), int(np.sum(~a & b))
    counts = np.random.default_rng(seed).multinomial(n, [wins / n, losses / n, (n - wins - losses) / n],
                                                     size=n_resamples)
    diffs = (counts[:, 0] - counts[:, 1]) / n
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    diff = (wins - losses) / n
    promote = bool(low > 0)
    reason = (f"paired_bootstrap: accuracy difference {diff:+.4f} ({level:.0%} interval {low:+.4f} to {high:+.4f}, "
              f"{n_resamples} resamples of {n} images; challenger alone right on {wins}, champion alone on {losses})"
              f" {'above' if promote else 'not above'} zero -> {'promote' if promote else 'keep the champion'}")
    return Decision(promote, "paired_bootstrap", reason, {"difference": diff, "low": float(low), "high": float(high),
                                                          "n_images": float(n)})


def always_gate() -> Decision:
    return Decision(True, "always", "always: the challenger is promoted without comparing evidence")


@dataclass(frozen=True)
class Evidence:
    """What the rules read; each rule needs only its own fields (``None`` champion fields: no champion)."""

    challenger: SettingScore | None = None
    champion: SettingScore | None = None
    challenger_correct: torch.Tensor | npt.ArrayLike | None = None
    champion_correct: torch.Tensor | npt.ArrayLike | None = None


def decide(rule: str, evidence: Evidence, *, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Decision:
    """Apply ``rule`` (one of ``RULES``) to ``evidence``."""
    if rule not in RULES:
        raise GateError(f"unknown promotion rule {rule!r}{did_you_mean(rule, RULES)}", ", ".join(RULES))
    if rule == "always":
        return always_gate()
    if rule == "lcb":
        if evidence.challenger is None:
            raise GateError("rule lcb needs the challenger setting's score (Evidence.challenger)")
        return lcb_gate(evidence.challenger, evidence.champion)
    if evidence.champion_correct is None:
        return _no_champion("paired_bootstrap")  # nothing to pair with: the challenger's record is not needed
    if evidence.challenger_correct is None:
        raise GateError("rule paired_bootstrap needs the challenger's per-image correctness "
                        "(Evidence.challenger_correct)")
    return paired_bootstrap_gate(evidence.challenger_correct, evidence.champion_correct,
                                 n_resamples=n_resamples, seed=seed)


def _correctness(values: torch.Tensor | npt.ArrayLike, who: str) -> np.ndarray:
    array = as_numpy(values)
    if array.ndim != 1 or len(array) == 0 or not (array.dtype == bool or np.isin(array, (0, 1)).all()):
        raise GateError(f"the {who}'s correctness must be a non-empty 1-D vector of booleans, got shape "
                        f"{array.shape} and dtype {array.dtype}")
    return array.astype(bool)


def _no_champion(rule: str) -> Decision:
    return Decision(True, rule, f"{rule}: no champion yet -> promote")


__all__ = ["BOOTSTRAP_LEVEL", "BOOTSTRAP_RESAMPLES", "RULES", "Decision", "Evidence", "GateError", "SettingScore",
           "always_gate", "decide", "lcb_gate", "paired_bootstrap_gate"]
