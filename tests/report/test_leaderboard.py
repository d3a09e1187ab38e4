"""Leaderboard: selection by validation, ranking, seeds, Pareto flags, filters, across datasets."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.report.test_trial_store import TrialStore

from tl_bench.errors import OutputError, StorageError
from tl_bench.report import CSV_COLUMNS, EXTRA_COLUMNS, across_datasets, leaderboard, pareto_mask


@pytest.fixture()
def store(tmp_path: Path) -> TrialStore:
    return TrialStore(tmp_path, study="demo")


def test_columns_are_the_csv_schema_then_extras(store: TrialStore) -> None:
    store.trial(val_acc=0.8, test_acc=0.7)
    board = leaderboard(store.uri)
    assert list(board.columns) == [*CSV_COLUMNS, *EXTRA_COLUMNS]
    assert board.loc[0, "dataset"] == "digits" and board.loc[0, "study"] == "demo"
    assert board.loc[0, "n_stages"] == 4 and board.loc[0, "freeze_depth"] == "0"


def test_best_trial_is_chosen_by_validation_never_by_test(store: TrialStore) -> None:
    by_val = store.trial(lr=1e-3, val_acc=0.90, test_acc=0.70)
    store.trial(lr=1e-2, val_acc=0.80, test_acc=0.95)  # better test, worse validation
    board = leaderboard(store.uri)
    assert len(board) == 1
    assert board.loc[0, "run_id"] == by_val
    assert board.loc[0, "test_acc"] == pytest.approx(0.70)
    assert board.loc[0, "lr"] == pytest.approx(1e-3)


def test_ranking_shares_ties_and_puts_missing_metric_last(store: TrialStore) -> None:
    store.trial(backbone="test_vit", val_acc=0.9, test_acc=0.8)
    store.trial(backbone="test_convnext", val_acc=0.9, test_acc=0.8)
    store.trial(backbone="test_resnet", val_acc=0.9, test_acc=0.9)
    store.trial(backbone="test_efficientnet", val_acc=0.99, drop=("test_acc",))
    store.trial(backbone="test_resnet", dataset="shapes", val_acc=0.5, test_acc=0.1)
    board = leaderboard(store.uri, metric="test_acc")  # asked for: ranks by test, still chosen by validation
    digits = board[board["dataset"] == "digits"]
    # tied ranks keep the ranking rule's order (more seeds, higher mean, then the earlier trial)
    assert list(digits["backbone"]) == ["test_resnet", "test_vit", "test_convnext", "test_efficientnet"]
    assert list(digits["rank"]) == [1, 2, 2, 4]
    assert math.isnan(digits["test_acc"].iloc[-1])
    assert board.loc[board["dataset"] == "shapes", "rank"].tolist() == [1]  # ranks count per dataset
    cheap_first = leaderboard(store.uri, dataset="digits", metric="val_acc", ascending=True)
    assert cheap_first["val_acc"].tolist() == sorted(cheap_first["val_acc"].tolist())


def test_failed_pruned_and_running_trials_are_left_out_by_default(store: TrialStore) -> None:
    kept = store.trial(neck="gap", val_acc=0.6, test_acc=0.6)
    store.trial(neck="gem", state="PRUNED", val_acc=0.99, test_acc=0.99)
    store.trial(neck="attn", state="FAIL", drop=("val_acc", "test_acc"))
    running = store.client.create_run(store.experiment_id, tags={"tlb.kind": "trial", "tlb.study": "demo",
                                                                 "tlb.dataset": "digits", "tlb.state": "RUNNING"})
    board = leaderboard(store.uri)
    assert board["run_id"].tolist() == [kept]
    everything = leaderboard(store.uri, include_unfinished=True)
    assert set(everything["state"]) == {"COMPLETE", "PRUNED", "FAIL", "RUNNING"}
    assert running.info.run_id in set(everything["run_id"])
    assert everything.loc[0, "neck"] == "gem"  # pruned with the best validation accuracy ranks first when asked for


def test_seeds_of_one_setting_are_averaged_with_their_spread(store: TrialStore) -> None:
    tests = [0.80, 0.90, 0.70]
    seeds = [store.trial(seed=s, val_acc=v, test_acc=t, train_time_s=2.0 + s)
             for s, v, t in zip((0, 1, 2), (0.70, 0.80, 0.90), tests)]
    store.trial(seed=0, lr=5e-2, val_acc=0.72, test_acc=0.99)  # another setting, worse on validation
    row = leaderboard(store.uri).iloc[0]
    assert row["n_seeds"] == 3 and row["n_seeds_started"] == 3 and row["seeds_complete"]
    assert row["test_acc"] == pytest.approx(statistics.mean(tests))
    assert row["test_acc_std"] == pytest.approx(statistics.stdev(tests))
    assert row["val_acc"] == pytest.approx(0.80)
    assert row["train_time_s"] == pytest.approx(3.0)
    assert row["run_id"] == seeds[2] and row["seed"] == 2  # the seed run with the best validation


def test_pareto_mask_on_a_hand_built_set() -> None:
    acc = [0.90, 0.80, 0.95, 0.70, 0.90, np.nan, 0.95]
    cost = [10.0, 5.0, 50.0, 5.0, 20.0, 1.0, 50.0]
    # 0 and 1 are cheapest at their accuracy; 2 and 6 tie at the top; 3 loses to 1; 4 to 0; 5 has no score.
    assert pareto_mask(acc, cost).tolist() == [True, True, True, False, False, False, True]
    assert pareto_mask([], []).tolist() == []


def test_board_flags_the_front_against_time_and_against_parameters(store: TrialStore) -> None:
    points = {"gap": (0.9, 10.0, 500), "gem": (0.8, 5.0, 100), "attn": (0.7, 8.0, 50), "mlp": (0.6, 20.0, 1000)}
    for neck, (acc, time_s, params) in points.items():
        # Test accuracy runs the other way: the fronts must not read it.
        store.trial(neck=neck, val_acc=acc, test_acc=1.5 - acc, train_time_s=time_s, params_trainable=params)
    board = leaderboard(store.uri).set_index("neck")
    assert board["is_pareto"].to_dict() == {"gap": True, "gem": True, "attn": False, "mlp": False}
    assert board["is_pareto_params"].to_dict() == {"gap": True, "gem": True, "attn": True, "mlp": False}


def test_rows_are_ranked_by_validation_and_report_test(store: TrialStore) -> None:
    store.trial(backbone="test_resnet", val_acc=0.90, test_acc=0.70)
    store.trial(backbone="test_vit", val_acc=0.80, test_acc=0.95)  # better on test, worse on validation
    board = leaderboard(store.uri)
    assert board["backbone"].tolist() == ["test_resnet", "test_vit"] and board["rank"].tolist() == [1, 2]
    assert board["test_acc"].tolist() == pytest.approx([0.70, 0.95])  # reported, never choosing
    assert board["val_acc_lcb"].tolist() == pytest.approx([0.90, 0.80])  # one seed each: no spread to subtract


def test_filters(store: TrialStore) -> None:
    store.trial(backbone="test_resnet", weights="scratch", freeze_depth=0, epochs=2)
    store.trial(backbone="test_resnet", weights="scratch", freeze_depth="all", epochs=5)
    store.trial(backbone="test_vit", weights="pretrained", freeze_depth=1, epochs=5)
    store.trial(backbone="test_vit", dataset="shapes", epochs=1)
    assert set(leaderboard(store.uri, backbone="test_r*")["backbone"]) == {"test_resnet"}
    assert set(leaderboard(store.uri, weights="pretrained")["backbone"]) == {"test_vit"}
    assert leaderboard(store.uri, freeze_depth="all")["freeze_depth"].tolist() == ["all"]
    assert leaderboard(store.uri, freeze_depth=1)["backbone"].tolist() == ["test_vit"]
    assert len(leaderboard(store.uri, min_epochs=5)) == 2
    assert set(leaderboard(store.uri, dataset="shapes")["dataset"]) == {"shapes"}
    with pytest.raises(OutputError, match=r"^no study 'no-such-study' in the store; accepted: demo$"):
        leaderboard(store.uri, study="no-such-study")
    assert len(leaderboard(store.uri, top=1)) == 2  # one per dataset


def test_an_unknown_metric_names_the_logged_ones(store: TrialStore) -> None:
    store.trial()
    with pytest.raises(OutputError, match="'val_top9'.*accepted: .*test_acc"):
        leaderboard(store.uri, metric="val_top9")


def test_across_datasets_keeps_combinations_run_everywhere(store: TrialStore) -> None:
    scores = {("digits", "test_resnet"): 0.9, ("digits", "test_vit"): 0.8, ("digits", "test_convnext"): 0.99,
              ("shapes", "test_resnet"): 0.6, ("shapes", "test_vit"): 0.7,
              ("cifar", "test_resnet"): 0.5, ("cifar", "test_vit"): 0.4}
    for (dataset, backbone), acc in scores.items():
        store.trial(dataset, backbone=backbone, val_acc=acc, test_acc=acc, train_time_s=acc * 10)
    table = across_datasets(store.uri)
    assert table["backbone"].tolist() == ["test_resnet", "test_vit"]  # convnext ran on digits only
    resnet = table.iloc[0]
    assert resnet["mean_test_acc"] == pytest.approx((0.9 + 0.6 + 0.5) / 3)
    assert resnet["mean_rank"] == pytest.approx((1 + 2 + 1) / 3)
    assert resnet["wins"] == 2 and resnet["n_datasets"] == 3 and resnet["rank"] == 1
    assert resnet["val_acc_lcb[shapes]"] == pytest.approx(0.6)  # ranked by validation, test reported
    again = across_datasets(leaderboard(store.uri))  # from a frame, same answer
    pd.testing.assert_frame_equal(table, again)


def test_reads_every_page_of_runs(store: TrialStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import tl_bench.tracking.read as read

    monkeypatch.setattr(read, "PAGE_SIZE", 3)
    ids = {store.trial(lr=0.001 * (i + 1), head=f"h{i}") for i in range(8)}
    assert set(leaderboard(store.uri)["run_id"]) == ids


def test_a_missing_store_is_an_error_and_stays_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(StorageError, match="--tracking-uri"):
        leaderboard()
    TrialStore(tmp_path / "studies" / "runs").trial(val_acc=0.6, test_acc=0.5)
    assert len(leaderboard()) == 1  # the default store, found from here
    with pytest.raises(StorageError, match="no MLflow store at"):
        leaderboard(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()  # reading never creates an empty store
