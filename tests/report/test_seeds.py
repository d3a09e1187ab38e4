"""Seeds of a setting: counted by state, distinct per study, averaged per seed, compared by a lower bound."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from tests.report.test_trial_store import TrialStore

from tl_bench.report import leaderboard, settings_table


@pytest.fixture()
def store(tmp_path: Path) -> TrialStore:
    return TrialStore(tmp_path, study="demo")


def test_a_pruned_seed_shows_up_as_such(store: TrialStore) -> None:
    store.trial(seed=0, val_acc=0.90, test_acc=0.88)
    store.trial(seed=1, val_acc=0.86, test_acc=0.84)
    store.trial(seed=2, state="PRUNED", val_acc=0.40, drop=("test_acc",))  # stopped early: bad so far
    row = leaderboard(store.uri).iloc[0]
    assert row["n_seeds"] == 2  # averaged
    assert row["n_seeds_started"] == 3 and row["n_seeds_pruned"] == 1 and row["n_seeds_failed"] == 0
    assert not row["seeds_complete"]
    assert row["val_acc"] == pytest.approx(0.88)


def test_a_failed_seed_and_a_running_one_are_counted(store: TrialStore) -> None:
    store.trial(seed=0, val_acc=0.9)
    store.trial(seed=1, state="FAIL", drop=("val_acc", "test_acc"))
    running = store.client.create_run(store.experiment_id, tags={
        "tlb.kind": "trial", "tlb.study": "demo", "tlb.dataset": "digits", "tlb.state": "RUNNING", "tlb.trial": "99"})
    params = {"backbone": "test_resnet", "weights": "scratch", "freeze_depth": "0", "neck": "gap", "head": "linear"}
    for key, value in params.items():
        store.client.log_param(running.info.run_id, key, value)
    row = leaderboard(store.uri).iloc[0]
    assert row["n_seeds"] == 1 and row["n_seeds_failed"] == 1 and not row["seeds_complete"]
    # The running run lacks the other params, so it is a setting of its own and finished nothing.
    assert len(leaderboard(store.uri)) == 1


def test_two_studies_in_one_store_do_not_double_count_a_seed(store: TrialStore) -> None:
    for seed, val in zip((0, 1, 2), (0.80, 0.84, 0.88)):
        store.trial(seed=seed, val_acc=val, test_acc=val)
    store.trial(seed=0, val_acc=0.70, test_acc=0.70, study="rerun")  # the same setting and seed, another study
    board = leaderboard(store.uri)
    assert len(board) == 1  # one combination
    row = board.iloc[0]
    assert row["study"] == "demo" and row["n_seeds"] == 3 and row["n_seeds_started"] == 3
    assert row["val_acc"] == pytest.approx(0.84)
    settings = settings_table_of(store)
    assert sorted(settings["n_seeds"].tolist()) == [1, 3]  # the other study's run is its own setting


def test_a_seed_run_twice_in_one_study_counts_once(store: TrialStore) -> None:
    store.trial(seed=0, val_acc=0.80, test_acc=0.80)
    store.trial(seed=0, val_acc=0.82, test_acc=0.82)  # the sampler drew the same setting and seed again
    store.trial(seed=1, val_acc=0.90, test_acc=0.90)
    row = leaderboard(store.uri).iloc[0]
    assert row["n_seeds"] == 2 and row["n_seeds_started"] == 2
    assert row["val_acc"] == pytest.approx((0.81 + 0.90) / 2)  # per seed first, then over seeds
    assert row["val_acc_std"] == pytest.approx(statistics.stdev([0.81, 0.90]))


def test_one_lucky_seed_does_not_beat_three_seeds(store: TrialStore) -> None:
    vals = [0.88, 0.90, 0.92]  # seed spread 0.02
    for seed, val in enumerate(vals):
        store.trial(lr=1e-3, seed=seed, val_acc=val, test_acc=0.85)
    store.trial(lr=3e-3, seed=0, val_acc=0.91, test_acc=0.99)  # half a spread above the mean: luck
    row = leaderboard(store.uri).iloc[0]
    assert row["lr"] == pytest.approx(1e-3) and row["n_seeds"] == 3
    s = statistics.stdev(vals)
    assert row["val_acc_lcb"] == pytest.approx(0.90 - 1.645 * s / math.sqrt(3))
    # Across combinations too: the three-seed row ranks first.
    store.trial(backbone="test_vit", seed=0, val_acc=0.91, test_acc=0.99)
    board = leaderboard(store.uri)
    assert board["backbone"].tolist() == ["test_resnet", "test_vit"]
    assert board["val_acc"].tolist() == pytest.approx([0.90, 0.91])


def test_a_clearly_better_single_seed_still_wins(store: TrialStore) -> None:
    for seed, val in enumerate([0.88, 0.90, 0.92]):
        store.trial(lr=1e-3, seed=seed, val_acc=val)
    store.trial(lr=3e-3, seed=0, val_acc=0.95)  # 2.5 spreads above the mean
    row = leaderboard(store.uri).iloc[0]
    assert row["lr"] == pytest.approx(3e-3) and row["n_seeds"] == 1 and row["seeds_complete"]


def test_spread_is_pooled_per_dataset(store: TrialStore) -> None:
    for seed, val in enumerate([0.5, 0.7]):  # shapes: seeds disagree by a lot
        store.trial("shapes", seed=seed, val_acc=val)
    store.trial("digits", val_acc=0.9)  # digits: no repeated setting, so no spread to subtract
    board = leaderboard(store.uri).set_index("dataset")
    assert board.loc["digits", "val_acc_lcb"] == pytest.approx(0.9)
    assert board.loc["shapes", "val_acc_lcb"] == pytest.approx(0.6 - 1.645 * statistics.stdev([0.5, 0.7]) / math.sqrt(2))


def test_a_store_where_nothing_finished_gives_an_empty_board(store: TrialStore, tmp_path: Path) -> None:
    from tl_bench.report import render_dashboard

    store.trial(seed=0, state="FAIL", drop=("val_acc", "test_acc"))
    store.trial(seed=1, state="PRUNED", drop=("test_acc",))
    assert leaderboard(store.uri).empty
    assert len(leaderboard(store.uri, include_unfinished=True)) == 1
    page = render_dashboard(None, store.uri, out=tmp_path / "d.html").read_text()
    assert "0 finished trial runs of 2" in page


def test_the_csv_loads_back_with_the_new_columns(store: TrialStore, tmp_path: Path) -> None:
    from tl_bench.report import read_csv, write_csv

    store.trial(seed=0, val_acc=0.9)
    store.trial(seed=1, state="PRUNED", drop=("test_acc",))
    board = leaderboard(store.uri)
    back = read_csv(write_csv(board, tmp_path / "board.csv"))
    pd.testing.assert_frame_equal(back, board, check_dtype=False)
    assert back.loc[0, "n_seeds_pruned"] == 1 and not back.loc[0, "seeds_complete"]


def settings_table_of(store: TrialStore) -> pd.DataFrame:
    from tl_bench.report import trial_runs, trial_table

    return settings_table(trial_table(trial_runs(store.uri, include_unfinished=True)))
