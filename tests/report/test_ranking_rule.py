"""One ranking rule: bounds that filters cannot move, splits that never mix, the gain over the best scratch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tl_bench.ranking import rank_trials
from tl_bench.report import across_datasets, leaderboard

from .test_trial_store import TrialStore


@pytest.fixture()
def store(tmp_path: Path) -> TrialStore:
    return TrialStore(tmp_path / "store")


def test_a_rows_bound_does_not_change_with_the_filters(store: TrialStore) -> None:
    # two repeated settings give the study's pooled spread; a filter that hides one must not change it
    for seed, val in enumerate((0.70, 0.80, 0.75)):
        store.trial(backbone="test_resnet", seed=seed, val_acc=val)
    for seed, val in enumerate((0.60, 0.62, 0.61)):
        store.trial(backbone="test_vit", seed=seed, val_acc=val)
    store.trial(backbone="test_convnext", val_acc=0.74)
    everything = leaderboard(store.uri).set_index("backbone")["val_acc_lcb"]
    for filtered in (leaderboard(store.uri, backbone="test_resnet"), leaderboard(store.uri, backbone="test_c*"),
                     leaderboard(store.uri, study="demo", dataset="digits", backbone="test_[rc]*")):
        for _, row in filtered.iterrows():
            assert row["val_acc_lcb"] == pytest.approx(everything[row["backbone"]])
    # the one-seed row borrows the pooled spread of its study: below its mean
    assert everything["test_convnext"] < 0.74


def test_splits_of_one_dataset_are_separate_rows_and_across_datasets_takes_one(store: TrialStore) -> None:
    for seed, val in enumerate((0.90, 0.92, 0.91)):
        store.trial(train_size=800, val_size=200, seed=seed, val_acc=val, test_acc=0.9)
    store.trial(train_size=100, val_size=50, val_acc=1.0, test_acc=0.6, study="tiny")
    store.trial(dataset="shapes", val_acc=0.5, test_acc=0.5)
    board = leaderboard(store.uri, dataset="digits")
    assert len(board) == 2
    assert set(board["split"]) == {"train=800 val=200 seed=0", "train=100 val=50 seed=0"}
    assert list(board["rank"]) == [1, 1]  # each ranked on its own split
    across = across_datasets(leaderboard(store.uri))
    three_seeds = board.loc[board["split"] == "train=800 val=200 seed=0", "val_acc_lcb"].item()
    assert across.loc[0, "val_acc_lcb[digits]"] == pytest.approx(three_seeds)  # the split with the most seeds


def test_gain_is_against_the_best_scratch_setting_of_the_backbone_at_any_depth(store: TrialStore) -> None:
    store.trial(weights="scratch", freeze_depth="all", val_acc=0.60, test_acc=0.55)
    best_scratch = store.trial(weights="scratch", freeze_depth=0, val_acc=0.90, test_acc=0.88)
    store.trial(weights="pretrained", freeze_depth="all", val_acc=0.85, test_acc=0.80)
    store.trial(backbone="test_vit", weights="pretrained", val_acc=0.7, test_acc=0.7)  # no scratch of its own
    board = leaderboard(store.uri).set_index(["backbone", "weights", "freeze_depth"])
    probe = board.loc[("test_resnet", "pretrained", "all")]
    assert probe["gain_vs_scratch"] == pytest.approx(0.80 - 0.88)  # not +0.25 against the scratch probe
    trial = board.loc[("test_resnet", "scratch", "0"), "trial"]
    assert probe["scratch_ref"] == f"freeze 0, gap/linear, trial {trial:g}"
    assert pd.isna(board.loc[("test_vit", "pretrained", "0"), "gain_vs_scratch"])
    assert pd.isna(board.loc[("test_resnet", "scratch", "0"), "gain_vs_scratch"])
    assert best_scratch in set(board["run_id"])


def test_rank_trials_orders_by_bound_then_seeds_then_mean() -> None:
    trials = pd.DataFrame([
        {"setting": "lucky", "seed": 0, "val_acc": 0.95, "trial": 0},
        {"setting": "steady", "seed": 0, "val_acc": 0.91, "trial": 1},
        {"setting": "steady", "seed": 1, "val_acc": 0.93, "trial": 2},
        {"setting": "steady", "seed": 2, "val_acc": 0.92, "trial": 3},
        {"setting": "spread", "seed": 0, "val_acc": 0.99, "trial": 4},
        {"setting": "spread", "seed": 1, "val_acc": 0.83, "trial": 5},
    ])
    ranked = rank_trials(trials)
    # pooled spread s = sqrt((2 * 0.01^2 + 1 * 0.1131^2) / 3); each mean pays 1.645 * s / sqrt(n)
    s = ((2 * 0.01**2 + 0.08**2 * 2) / 3) ** 0.5
    assert list(ranked["val_acc_lcb"]) == pytest.approx([0.92 - 1.645 * s / 3**0.5, 0.95 - 1.645 * s,
                                                         0.91 - 1.645 * s / 2**0.5])
    assert list(ranked["setting"]) == ["steady", "lucky", "spread"]
    assert ranked.loc[0, "trial"] == 2  # the representative: the steady setting's best seed
    assert list(ranked["n_seeds"]) == [3, 1, 2]


def test_seeds_run_at_another_thread_count_are_another_setting(store: TrialStore) -> None:
    for seed in (0, 1):
        store.trial(seed=seed, val_acc=0.8, tags={"tlb.threads": "1"})
    store.trial(seed=2, val_acc=0.9, tags={"tlb.threads": "2"})
    row = leaderboard(store.uri).iloc[0]
    # two settings, never averaged together (three seeds at 0.833); the 2-thread one is best by its bound
    assert row["n_seeds"] == 1 and row["val_acc"] == pytest.approx(0.9)
