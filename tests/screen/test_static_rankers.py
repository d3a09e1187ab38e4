"""Screening against the data-free static rankers: each score's Kendall tau beside the tau of the
backbone's parameter count and forward FLOPs (tau-b: the weights of one backbone tie), logged with
the study summary and said in its description; k-NN as the default score; features at each
backbone's pretrained input size, kept apart from the dataset-size ones in the cache."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution

from tl_bench.models import default_img_size
from tl_bench.screen import Candidate, kendall_tau, static_agreement
from tl_bench.screen.features import candidate_features
from tl_bench.spec import ScreenSpec, load_spec, parse_spec
from tl_bench.study.screen import probe_config_for, screen_tau, tau_line
from tl_bench.study.storage import SCREEN_SCORES
from tl_bench.study.summary import write_summary
from tl_bench.tracking import RUN_NOTE, Tracker
from tl_bench.train import FeatureCache

# Three backbones of known size, two weights each; the best accuracy grows with the backbone and,
# within one, pretrained beats scratch. FLOPs run the other way round from parameters.
SIZES = {"small": (1e5, 3e9), "medium": (2e5, 2e9), "large": (3e5, 1e9)}
BEST = {("small", "scratch"): 0.50, ("small", "pre"): 0.60, ("medium", "scratch"): 0.70, ("medium", "pre"): 0.80,
        ("large", "scratch"): 0.90, ("large", "pre"): 0.95}


def _tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b by its definition: (concordant - discordant) / sqrt(pairs untied in x * untied in y)."""
    pairs = list(itertools.combinations(range(len(x)), 2))
    sign = [math.copysign(1, x[i] - x[j]) * math.copysign(1, y[i] - y[j]) for i, j in pairs
            if x[i] != x[j] and y[i] != y[j]]
    untied_x = sum(x[i] != x[j] for i, j in pairs)
    untied_y = sum(y[i] != y[j] for i, j in pairs)
    return sum(sign) / math.sqrt(untied_x * untied_y)


def _study(tmp_path: Path, scores: dict[str, dict[str, float]]) -> optuna.Study:
    """A study on a real SQLite store whose trials reached ``BEST`` (plus a worse seed of each)."""
    study = optuna.create_study(study_name="s/digits", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                direction="maximize")
    study.set_user_attr(SCREEN_SCORES, scores)
    for (backbone, weights), acc in BEST.items():
        for value in (acc, acc - 0.3):
            study.add_trial(optuna.trial.create_trial(
                params={"backbone": backbone, f"weights@{backbone}": weights},
                distributions={"backbone": CategoricalDistribution(list(SIZES)),
                               f"weights@{backbone}": CategoricalDistribution(["scratch", "pre"])},
                value=value))
    return study


def _scores(**by_candidate: object) -> dict[str, dict[str, float]]:
    """Screening values per "backbone|weights": static ones from ``SIZES``; logme follows the best
    accuracy exactly, knn the reverse of it."""
    order = sorted(BEST, key=BEST.get)  # type: ignore[arg-type]
    return {f"{b}|{w}": {"logme": float(order.index((b, w))), "knn": -float(order.index((b, w))),
                         "params": SIZES[b][0], "flops": SIZES[b][1], **by_candidate} for b, w in BEST}


def test_static_rankers_get_a_tau_b_beside_each_score(tmp_path: Path) -> None:
    out = screen_tau(_study(tmp_path, _scores()))
    keys = sorted(f"{b}|{w}" for b, w in BEST)
    best = [BEST[tuple(k.split("|"))] for k in keys]  # type: ignore[index]
    params = [SIZES[k.split("|")[0]][0] for k in keys]
    # 12 of the 15 pairs are untied in size and all concordant: 12 / sqrt(12 * 15), not 12 / 15.
    assert out["screen.tau_params"] == pytest.approx(_tau_b(params, best)) == pytest.approx(12 / math.sqrt(180))
    assert out["screen.tau_flops"] == pytest.approx(-12 / math.sqrt(180))
    assert out["screen.tau_logme"] == pytest.approx(1.0) and out["screen.tau_knn"] == pytest.approx(-1.0)
    assert out["screen.n_candidates"] == 6
    # The winner (large|pre) ties with large|scratch on size: neither counts as ranked above it.
    assert out["screen.best_rank_params"] == 1 and out["screen.best_rank_flops"] == 5
    line = tau_line(out)
    assert "logme 1.00, knn -1.00; static rankers: params 0.89, flops -0.89" in line and "6 candidates" in line


def test_one_backbone_gives_no_static_tau_and_older_studies_give_scores_only(tmp_path: Path) -> None:
    one = {k: {**v, "params": 5.0, "flops": 7.0} for k, v in _scores().items()}
    (tmp_path / "one").mkdir()
    out = screen_tau(_study(tmp_path / "one", one))
    assert "screen.tau_params" not in out and "screen.tau_flops" not in out and "screen.tau_knn" in out
    older = {k: {"logme": v["logme"], "knn": v["knn"]} for k, v in _scores().items()}
    (tmp_path / "older").mkdir()
    out = screen_tau(_study(tmp_path / "older", older))
    assert set(out) == {"screen.n_candidates", "screen.tau_logme", "screen.best_rank_logme", "screen.tau_knn",
                        "screen.best_rank_knn"}
    assert kendall_tau([1.0, 1.0], [0.2, 0.3]) is None and kendall_tau([1.0], [2.0]) is None


def test_the_summary_logs_the_static_taus_and_says_them_in_its_description(tmp_path: Path, mlflow_db: str) -> None:
    study = _study(tmp_path, _scores())
    tracker = Tracker(mlflow_db, "s")
    parent = tracker.create_parent_run(study="s", dataset="digits", optuna_study="s/digits", description="Digits.")
    written = write_summary(study, tracker, parent, "Digits.")
    run = mlflow.MlflowClient(mlflow_db).get_run(parent)
    for name, tau in (("params", 12 / math.sqrt(180)), ("flops", -12 / math.sqrt(180)), ("knn", -1.0)):
        assert run.data.metrics[f"screen.tau_{name}"] == pytest.approx(tau) == pytest.approx(written[f"screen.tau_{name}"])
    note = run.data.tags[RUN_NOTE]
    assert note.startswith("Digits.") and "static rankers: params 0.89, flops -0.89" in note


def test_knn_is_the_default_score(tmp_path: Path) -> None:
    assert ScreenSpec().score == "knn" and ScreenSpec().img_size == "dataset"
    data = {"name": "s", "datasets": [{"name": "digits", "img_size": 32}],
            "space": {"backbones": [{"name": "test_resnet", "weights": ["scratch"]}]}, "budget": {"n_trials": 1},
            "screen": {"keep": 1}}
    spec = parse_spec(data, source=tmp_path / "s.yaml")
    assert spec.screen is not None and spec.screen.score == "knn"


def test_static_agreement_says_when_a_score_orders_by_size() -> None:
    cands = [Candidate(b, "scratch", logme=i, knn=-i, seconds=0.0, params=p, flops=f)
             for i, (b, (p, f)) in enumerate(SIZES.items())]
    agreement = static_agreement(cands)
    assert agreement["logme"] == pytest.approx({"params": 1.0, "flops": -1.0})
    assert agreement["knn"] == pytest.approx({"params": -1.0, "flops": 1.0})
    with pytest.raises(ValueError, match="accepted: logme, knn, params, flops"):
        cands[0].score("latency")


def test_pretrained_size_features_are_computed_at_that_size_under_their_own_cache_key(tmp_path: Path) -> None:
    def spec_at(img_size: str):  # type: ignore[no-untyped-def]
        data = {"name": "scr", "datasets": [{"name": "digits", "img_size": 32, "train_size": 40, "val_size": 20}],
                "space": {"backbones": [{"name": "test_resnet", "weights": ["scratch"]}], "freeze_depth": ["all"],
                          "neck": ["gap"], "head": ["linear"]},
                "fixed": {"batch_size": 20}, "budget": {"n_trials": 1}, "screen": {"img_size": img_size}}
        path = tmp_path / f"{img_size}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        spec = load_spec(path)
        return probe_config_for(spec, spec.datasets[0], lambda backbone, weights: None)("test_resnet", "scratch")

    at_dataset, at_pretrained = spec_at("dataset"), spec_at("pretrained")
    assert at_dataset.img_size == 32 and at_pretrained.img_size == default_img_size("test_resnet") != 32
    cache = FeatureCache(tmp_path / "cache")
    small = candidate_features(at_dataset, cache)
    keys = set(cache.keys())
    assert keys  # one entry per split the probe's feeder holds
    large = candidate_features(at_pretrained, cache)
    assert len(set(cache.keys()) - keys) == len(keys) and cache.stats["disk_hits"] == 0  # other entries, none reused
    # Same backbone, so the same parameters; the larger input costs more FLOPs and gives other features.
    assert large.params == small.params > 0 and large.flops > small.flops * 10
    assert large.splits["train"][0].shape == small.splits["train"][0].shape
    assert not (large.splits["train"][0] == small.splits["train"][0]).all()
    # Read again at the pretrained size: the cache's entries, nothing computed.
    reread = FeatureCache(tmp_path / "cache")
    again = candidate_features(at_pretrained, reread)
    assert (again.splits["val"][0] == large.splits["val"][0]).all()
    assert reread.stats["disk_hits"] >= 2 and reread.stats["computed"] == 0
