"""Screening end to end on digits with tiny backbones: the CLI's ranking, its MLflow run, the cache a
later probe reuses, and a study that searches only the candidates screening kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.study.space import candidate_of
from tl_bench.train import FeatureCache, train_config

pytestmark = pytest.mark.slow

SPACE = {"backbones": [{"name": "test_resnet", "weights": ["scratch"]}, {"name": "test_convnext", "weights": ["scratch"]},
                       {"name": "test_vit", "weights": ["scratch"]}],
         "freeze_depth": ["all"], "neck": ["gap"], "head": ["linear"]}


def _spec(folder: Path, **extra: object) -> Path:
    data = {"name": "scr", "datasets": [{"name": "digits", "img_size": 32, "train_size": 200, "val_size": 100}],
            "space": SPACE, "fixed": {"epochs": 1, "batch_size": 64}, "sampler": {"name": "random", "seed": 0},
            "budget": {"n_trials": 3}, **extra}
    path = folder / "scr.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _runs(spec, kind: str):  # type: ignore[no-untyped-def]
    mlflow.set_tracking_uri(spec.tracking_uri)
    return [r for r in mlflow.search_runs(experiment_names=[spec.name], output_format="list")
            if r.data.tags.get("tlb.kind") == kind]


def test_screen_ranks_every_candidate_records_a_run_and_fills_the_probe_cache(tmp_path: Path) -> None:
    path = _spec(tmp_path)
    done = subprocess.run([sys.executable, "-m", "tl_bench", "screen", str(path), "--json"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ranked = json.loads(done.stdout)["digits"]
    assert sorted(c["backbone"] for c in ranked) == ["test_convnext", "test_resnet", "test_vit"]
    # Ranked by k-NN, the default score (equal accuracies share a rank).
    knns = [c["knn"] for c in ranked]
    assert knns == sorted(knns, reverse=True) and all(0.0 <= k <= 1.0 for k in knns)
    assert [c["rank"] for c in ranked] == [1 + knns.index(k) for k in knns]
    # Each candidate carries its static values: the backbones differ in size.
    assert all(c["params"] > 0 and c["flops"] > 0 for c in ranked) and len({c["params"] for c in ranked}) == 3

    spec = load_spec(path)
    (run,) = _runs(spec, "screen")
    vit = next(c for c in ranked if c["backbone"] == "test_vit")
    assert run.data.params["score"] == "knn"
    for name in ("logme", "knn", "params", "flops"):
        assert run.data.metrics[f"{name}/test_vit/scratch"] == pytest.approx(vit[name])
    # The table shows the static values and each score's tau against them (features in the cache now).
    shown = subprocess.run([sys.executable, "-m", "tl_bench", "screen", str(path)], capture_output=True, text=True,
                           cwd=tmp_path, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "params" in shown.stdout and "flops" in shown.stdout and f"{vit['params']:,.0f}" in shown.stdout
    assert "tau of each score against the static rankers" in shown.stdout and "knn: params" in shown.stdout
    # The probe of a screened candidate reads every split's features screening stored: nothing is extracted again.
    cache = FeatureCache(spec.cache_dir)
    values = {**spec.base_config(spec.datasets[0]), "backbone": "test_vit", "weights": "scratch",
              "freeze_depth": "all", "neck": "gap", "head": "linear"}
    from tl_bench.config import TrialConfig

    result = train_config(TrialConfig.from_dict(values), cache=cache)
    assert result.cache_used and cache.stats["disk_hits"] == 3 and cache.stats["computed"] == 0


def test_a_study_searches_only_the_candidates_screening_kept(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(_spec(tmp_path, screen={"score": "knn", "keep": 1}))
    run_spec(spec, RunOptions(n_trials=3), quiet=False)
    study = optuna.load_study(study_name="scr/digits", storage=spec.storage_url)
    scores = study.user_attrs["screen_scores"]
    best = max(scores, key=lambda key: scores[key]["knn"])
    assert {t.params["backbone"] for t in study.trials} == {best.split("|")[0]}
    (parent,) = _runs(spec, "study")
    dropped = parent.data.tags["tlb.screen_dropped"].split(", ")
    assert len(dropped) == 2 and best not in dropped
    assert "dropped" in capsys.readouterr().err


def test_the_summary_says_how_well_screening_predicted_the_search(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, screen={"score": "logme"}, sampler={"name": "grid"}))  # each candidate once
    run_spec(spec, RunOptions(), quiet=True)
    (parent,) = _runs(spec, "study")
    assert parent.data.metrics["screen.n_candidates"] == 3
    for name in ("logme", "knn", "params", "flops"):  # each score's tau beside the static rankers'
        assert -1.0 <= parent.data.metrics[f"screen.tau_{name}"] <= 1.0
    assert "static rankers: params" in parent.data.tags["mlflow.note.content"]
    # Where each score ranked the candidate that did best, recomputed from what the study kept.
    study = optuna.load_study(study_name=f"{spec.name}/digits", storage=spec.storage)
    scores = study.user_attrs["screen_scores"]
    assert all(set(v) == {"logme", "knn", "params", "flops"} for v in scores.values())
    best = max(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.values[0])
    winner = candidate_of(best)
    for name in ("logme", "knn", "params", "flops"):
        ranked = sorted(scores, key=lambda k: -scores[k][name])
        assert parent.data.metrics[f"screen.best_rank_{name}"] == ranked.index(winner) + 1


def test_a_study_that_trains_with_augmentation_screens_without_it(tmp_path: Path) -> None:
    path = _spec(tmp_path, fixed={"epochs": 1, "batch_size": 64, "augment": True, "mixup": 0.2})
    done = subprocess.run([sys.executable, "-m", "tl_bench", "screen", str(path), "--json"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scores frozen, unaugmented features: augment: light, mixup: 0.2 applies to the search only" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(json.loads(done.stdout)["digits"]) == 3
