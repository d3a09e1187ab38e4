"""The promotion gate's rules on constructed evidence, including an A/A case no rule but ``always`` promotes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tl_bench.evaluation import (
    Evidence,
    GateError,
    SettingScore,
    decide,
    lcb_gate,
    paired_bootstrap_gate,
)
from tl_bench.ranking import LCB_Z

SEEDS = [0.80, 0.82, 0.78]  # one setting's validation accuracy over three seeds


def test_a_setting_score_is_the_rankings_bound() -> None:
    score = SettingScore.of_seeds(SEEDS)
    assert score.val_acc == pytest.approx(0.80) and score.n_seeds == 3
    assert score.val_acc_lcb == pytest.approx(0.80 - LCB_Z * pd.Series(SEEDS).std() / np.sqrt(3))
    single = SettingScore.of_seeds([0.9])
    assert single.val_acc_lcb == pytest.approx(0.9)  # one seed: no spread, the bound is the mean


def test_lcb_promotes_only_when_the_bound_clears_the_champions_mean() -> None:
    champion = SettingScore.of_seeds(SEEDS)
    clear = SettingScore.of_seeds([0.90, 0.91, 0.89])
    near = SettingScore.of_seeds([0.82, 0.86, 0.80])  # a higher mean (0.827) whose bound (0.798) stays below 0.80
    assert lcb_gate(clear, champion).promote
    decision = lcb_gate(near, champion)
    assert not decision.promote and near.val_acc > champion.val_acc
    assert decision.rule == "lcb" and "<= champion mean 0.8000" in decision.reason
    assert decision.numbers["challenger_lcb"] == pytest.approx(near.val_acc_lcb)
    assert "\n" not in decision.reason


def test_lcb_a_a_same_seed_results_are_not_promoted() -> None:
    same = SettingScore.of_seeds(SEEDS)
    assert not decide("lcb", Evidence(challenger=same, champion=same)).promote
    one = SettingScore.of_seeds([0.85])  # no spread: the bound equals the mean, which does not exceed itself
    assert not decide("lcb", Evidence(challenger=one, champion=one)).promote


def paired(n: int, p_both: float, p_a_only: float, p_b_only: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of models a and b on ``n`` images with the given shares of each outcome."""
    p_neither = 1 - p_both - p_a_only - p_b_only
    kind = np.random.default_rng(seed).choice(4, size=n, p=[p_both, p_a_only, p_b_only, p_neither])
    return np.isin(kind, (0, 1)), np.isin(kind, (0, 2))


def test_paired_bootstrap_promotes_a_clearly_better_challenger() -> None:
    a, b = paired(1000, 0.70, 0.08, 0.02, seed=0)
    decision = paired_bootstrap_gate(a, b)
    assert decision.promote and decision.rule == "paired_bootstrap"
    assert decision.numbers["difference"] == pytest.approx(a.mean() - b.mean())
    assert 0 < decision.numbers["low"] < decision.numbers["difference"] < decision.numbers["high"]
    assert "2000 resamples of 1000 images" in decision.reason


def test_paired_bootstrap_interval_matches_resampling_images() -> None:
    """Drawing outcome counts is the same bootstrap as drawing images with replacement."""
    a, b = paired(300, 0.6, 0.1, 0.07, seed=1)
    decision = paired_bootstrap_gate(a, b, n_resamples=4000, seed=3)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 300, size=(4000, 300))
    direct = (a[idx].astype(float) - b[idx]).mean(axis=1)
    low, high = np.quantile(direct, [0.025, 0.975])
    assert decision.numbers["low"] == pytest.approx(low, abs=0.008)
    assert decision.numbers["high"] == pytest.approx(high, abs=0.008)


def test_paired_bootstrap_is_seeded() -> None:
    a, b = paired(500, 0.6, 0.06, 0.04, seed=2)
    assert paired_bootstrap_gate(a, b, seed=5) == paired_bootstrap_gate(a, b, seed=5)


@pytest.mark.parametrize("seed", range(5))
def test_paired_bootstrap_a_a_same_accuracy_is_not_promoted(seed: int) -> None:
    # two models right on the same number of images, disagreeing on 20 % of them
    b = np.random.default_rng(seed).random(800) < 0.75
    a = b.copy()
    flip_right = np.flatnonzero(b)[:80]
    flip_wrong = np.flatnonzero(~b)[:80]
    a[flip_right], a[flip_wrong] = False, True
    assert a.sum() == b.sum()
    decision = decide("paired_bootstrap", Evidence(challenger_correct=torch.from_numpy(a), champion_correct=b))
    assert not decision.promote and decision.numbers["low"] < 0 < decision.numbers["high"]
    assert not paired_bootstrap_gate(b, b).promote  # identical results: interval [0, 0], not above zero


def test_always_and_no_champion_promote() -> None:
    assert decide("always", Evidence()).promote
    challenger = SettingScore.of_seeds([0.1])
    assert decide("lcb", Evidence(challenger=challenger)).promote
    no_champion = decide("paired_bootstrap", Evidence(challenger_correct=[True, False]))
    assert no_champion.promote and "no champion" in no_champion.reason


def test_unknown_rule_and_missing_evidence_are_one_line_errors() -> None:
    with pytest.raises(GateError) as err:
        decide("lbc", Evidence())
    assert "did you mean 'lcb'" in str(err.value) and err.value.accepted == "lcb, paired_bootstrap, always"
    with pytest.raises(GateError, match="needs the challenger setting's score"):
        decide("lcb", Evidence())
    with pytest.raises(GateError, match="differ in length"):
        paired_bootstrap_gate([True, False], [True])
    with pytest.raises(GateError, match="booleans"):
        paired_bootstrap_gate([0.5, 1.0], [True, True])
