"""Ranking screened candidates: equal scores tie (shared rank, kept together, recorded as a tie),
and which split each score reads (LogME the training split; k-NN fitted on training, scored on
validation), on real features of a tiny backbone."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import yaml

from tl_bench.screen import Candidate, as_records, kept, rank_candidates, record_screening, screen_dataset
from tl_bench.screen.features import pooled_features
from tl_bench.screen.scores import knn_accuracy, logme
from tl_bench.spec import load_spec
from tl_bench.study.screen import probe_config_for
from tl_bench.tracking import Tracker
from tl_bench.train import FeatureCache

SPACE = {"backbones": [{"name": "test_resnet", "weights": ["scratch"]}, {"name": "test_convnext", "weights": ["scratch"]}],
         "freeze_depth": ["all"], "neck": ["gap"], "head": ["linear"]}


def _candidate(name: str, knn: float, logme_value: float = 0.0) -> Candidate:
    return Candidate(name, "scratch", logme_value, knn, 0.0)


def test_equal_scores_share_a_rank_and_the_next_rank_is_skipped() -> None:
    ranked = rank_candidates([_candidate("a", 0.8), _candidate("b", 0.9), _candidate("c", 0.9), _candidate("d", 0.7),
                              _candidate("e", float("nan"))], "knn")
    assert [(c.backbone, c.rank, c.tied) for c in ranked] == [
        ("b", 1, True), ("c", 1, True), ("a", 3, False), ("d", 4, False), ("e", 5, False)]
    assert [c.rank_label for c in ranked[:3]] == ["1 (tie)", "1 (tie)", "3"]
    # A tie at the cut keeps both: neither is ahead, so neither is dropped for the other.
    chosen, dropped = kept(ranked, 1)
    assert [c.backbone for c in chosen] == ["b", "c"] and [c.backbone for c in dropped] == ["a", "d", "e"]
    assert [c.backbone for c in kept(ranked, 3)[0]] == ["b", "c", "a"]
    assert [(r["rank"], r["tied"]) for r in as_records(ranked)][:3] == [(1, True), (1, True), (3, False)]
    # Ranking by the other score ranks afresh.
    by_logme = rank_candidates([_candidate("a", 0.8, -1.0), _candidate("b", 0.9, -2.0)], "logme")
    assert [(c.backbone, c.rank, c.tied) for c in by_logme] == [("a", 1, False), ("b", 2, False)]


@pytest.fixture(scope="module")
def screened(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("screen")
    data = {"name": "scr", "datasets": [{"name": "digits", "img_size": 32, "train_size": 200, "val_size": 100}],
            "space": SPACE, "fixed": {"epochs": 1, "batch_size": 64}, "sampler": {"name": "random", "seed": 0},
            "budget": {"n_trials": 2}}
    (folder / "scr.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(folder / "scr.yaml")
    cache = FeatureCache(folder / "cache")
    probe = probe_config_for(spec, spec.datasets[0], lambda backbone, weights: None)
    return spec, cache, probe


def test_candidates_with_the_same_features_tie_through_screening_and_its_record(
    screened, mlflow_db: str,  # type: ignore[no-untyped-def]
) -> None:
    spec, cache, probe = screened
    # Both candidates read test_resnet's features: every score is equal, so neither may win.
    ranked = screen_dataset(spec, config_for=lambda backbone, weights: probe("test_resnet", weights), cache=cache,
                            score="knn")
    assert [c.backbone for c in ranked] == ["test_resnet", "test_convnext"]
    assert ranked[0].knn == ranked[1].knn and ranked[0].logme == ranked[1].logme
    assert [(c.rank, c.tied) for c in ranked] == [(1, True), (1, True)]
    assert len(kept(ranked, 1)[0]) == 2
    tracker = Tracker(mlflow_db, spec.name)
    run_id = record_screening(tracker, spec, spec.datasets[0], ranked, score="knn", keep=1, start_ms=0)
    params = mlflow.MlflowClient(mlflow_db).get_run(run_id).data.params
    assert params["best"] == "test_resnet|scratch, test_convnext|scratch"
    assert params["ties"] == "rank 1: test_resnet|scratch = test_convnext|scratch"
    assert params["kept"] == "test_resnet|scratch, test_convnext|scratch" and params["dropped"] == "none"


def test_logme_reads_the_training_split_and_knn_is_fitted_on_training_and_scored_on_validation(
    screened,  # type: ignore[no-untyped-def]
) -> None:
    spec, cache, probe = screened
    (candidate,) = [c for c in screen_dataset(spec, config_for=probe, cache=cache) if c.backbone == "test_resnet"]
    feats = pooled_features(probe("test_resnet", "scratch"), cache)
    (train_x, train_y), (val_x, val_y) = feats["train"], feats["val"]
    assert candidate.logme == pytest.approx(logme(train_x, train_y), rel=1e-12)
    assert candidate.logme != pytest.approx(logme(val_x, val_y), rel=1e-6)
    assert candidate.knn == knn_accuracy(train_x, train_y, val_x, val_y)
    other_ways = (knn_accuracy(val_x, val_y, train_x, train_y), knn_accuracy(train_x, train_y, train_x, train_y))
    assert candidate.knn not in other_ways

    # The validation labels are what is scored: shuffling them changes the score, reordering the
    # validation items with their labels does not.
    rng = np.random.default_rng(0)
    assert knn_accuracy(train_x, train_y, val_x, rng.permutation(val_y)) < candidate.knn - 0.05
    order = rng.permutation(len(val_y))
    assert knn_accuracy(train_x, train_y, val_x[order], val_y[order]) == candidate.knn
    # The training split is what is fitted: changing only its labels changes the score.
    assert knn_accuracy(train_x, (train_y + 1) % 10, val_x, val_y) < candidate.knn - 0.05
