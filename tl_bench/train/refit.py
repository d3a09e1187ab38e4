"""Refit: a chosen setting retrained on train + validation, tested once per seed (VTAB-1k's protocol).

The search chose the setting and its epochs on the validation split; the
refit trains that recipe for exactly those epochs on training and validation
images together, keeps the last epoch (nothing is left to choose on) and
measures test accuracy once per seed. The spread over seeds gives the
interval a reader needs before trusting a difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from tl_bench.config import TrialConfig, TrialResult
from tl_bench.data.splits import merge_train_val
from tl_bench.train.cache import FeatureCache
from tl_bench.train.from_config import TrainedModel, build_for, prepare
from tl_bench.train.trainer import train_trial


@dataclass
class RefitResult:
    """Test accuracy per seed of one refit setting, and the first seed's trained model."""

    config: TrialConfig  # the recipe as refit: the chosen epochs, select=last, the first seed
    results: list[TrialResult] = field(default_factory=list)
    model: TrainedModel | None = None

    @property
    def test_accs(self) -> list[float]:
        return [r.test_acc for r in self.results]

    @property
    def test_mean(self) -> float:
        return float(np.mean(self.test_accs))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Student-t interval of the mean test accuracy over seeds, within [0, 1]; the mean itself with one seed."""
        accs = self.test_accs
        if len(accs) < 2:
            return self.test_mean, self.test_mean
        half = stats.t.ppf(0.5 + level / 2, len(accs) - 1) * np.std(accs, ddof=1) / math.sqrt(len(accs))
        return max(0.0, self.test_mean - float(half)), min(1.0, self.test_mean + float(half))


def refit(config: TrialConfig, *, epochs: int, seeds: int, cache: FeatureCache | None = None) -> RefitResult:
    """Train ``config`` for ``epochs`` on train + validation with ``seeds`` seeds (``config.seed`` and the
    next ones), each tested once; the first seed's model is kept."""
    recipe = config.replace(epochs=epochs, select="last")
    out = RefitResult(recipe)
    model, data, interpolation = prepare(recipe)
    merged = merge_train_val(data)
    for offset in range(seeds):
        seeded = recipe.replace(seed=recipe.seed + offset)
        if offset:
            model = build_for(seeded, data.num_classes)
        out.results.append(train_trial(seeded, model, merged, cache=cache))
        if offset == 0:
            out.model = TrainedModel(model, merged, interpolation)
    return out


__all__ = ["RefitResult", "refit"]
