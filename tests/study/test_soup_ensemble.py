"""Soups and ensembles of a real small study's kept models: recorded, registered, gated and served.

One study on digits keeps the models of its three settings (three learning rates of one
linear probe from one start, so they soup); a soup and an ensemble are made of them and the
MLflow models they log are loaded and asked to classify the test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient

from tl_bench.cli import main
from tl_bench.combine import make_ensemble, make_soup
from tl_bench.report.challengers import COLUMNS, challenger_rows
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.tracking.logged_models import find_models
from tl_bench.tracking.model_registry import aliased, get_version

from .conftest import served_test_accuracy
from .test_kept_models import write_spec

pytestmark = pytest.mark.slow

LRS = [0.05, 0.1, 0.3]


@pytest.fixture(scope="module")
def combined(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("combine")
    path = write_spec(folder, mlflow_template, name="combo", baselines=[], sampler={"name": "grid", "seed": 0},
                      space={"backbones": ["test_resnet"], "freeze_depth": ["all"], "lr": LRS},
                      budget={"n_trials": 3}, keep_models={"top_k": 3}, promote={"rule": "paired_bootstrap"})
    spec = load_spec(path)
    run_spec(spec, RunOptions(), quiet=True)
    dataset = spec.datasets[0]
    return {"spec": spec, "path": path, "soup": make_soup(spec, dataset), "uniform": make_soup(spec, dataset, uniform=True),
            "ensemble": make_ensemble(spec, dataset)}


@pytest.mark.parametrize("made", ["soup", "uniform", "ensemble"])
def test_the_served_model_reproduces_its_logged_test_accuracy(combined: dict[str, Any], made: str) -> None:
    spec, outcome = combined["spec"], combined[made]
    kind = "ensemble" if made == "ensemble" else "soup"
    accuracy = served_test_accuracy(spec, f"models:/combo-digits/{outcome.version}")
    run = MlflowClient(spec.tracking_uri).get_run(outcome.run_id)
    assert accuracy == run.data.metrics["test_acc"] == outcome.test_acc
    assert run.data.tags["tlb.kind"] == kind and run.data.tags["mlflow.parentRunId"]


def test_a_soup_averages_kept_models_of_one_start_and_is_no_worse_on_validation(combined: dict[str, Any]) -> None:
    spec, soup = combined["spec"], combined["soup"]
    kept = find_models(spec.tracking_uri, dataset="digits", study="combo")
    assert len(kept) == 3  # the three settings' models; soups and ensembles are no kept trial models
    assert set(soup.members) <= {k.trial for k in kept} and soup.members[0] == max(kept, key=lambda k: k.val_acc).trial
    assert soup.val_acc >= max(k.val_acc for k in kept) - 1e-9  # greedy: never below its best ingredient
    run = MlflowClient(spec.tracking_uri).get_run(soup.run_id)
    single = MlflowClient(spec.tracking_uri).get_run(kept[0].run_id).data.metrics
    assert run.data.metrics["params_total"] == single["params_total"]  # one model's size
    assert run.data.metrics["flops_fwd_per_image"] > 0 and run.data.metrics["latency_ms"] > 0


def test_a_uniform_soup_is_the_mean_of_every_ingredient(combined: dict[str, Any], tmp_path: Path) -> None:
    from tl_bench.champion import load_classifier
    from tl_bench.tracking.evaluation_record import download_model_files

    spec, uniform = combined["spec"], combined["uniform"]
    kept = find_models(spec.tracking_uri, dataset="digits", study="combo")
    assert sorted(uniform.members) == sorted(k.trial for k in kept) and uniform.detail == "uniform, 3 of 3 candidates"

    def weights(reference: str, folder: str) -> dict[str, Any]:
        files = download_model_files(spec.tracking_uri, reference, tmp_path / folder)
        return load_classifier(files).members[0].model.state_dict()

    soup = weights(f"models:/combo-digits/{uniform.version}", "soup")
    parts = [weights(f"models:/{k.model_id}", str(k.trial)) for k in kept]
    head = [k for k in soup if k.startswith("head.") and k.endswith("weight")][0]
    assert torch.allclose(soup[head], sum(p[head] for p in parts) / 3, atol=1e-6)
    assert not torch.equal(parts[0][head], parts[1][head])  # the ingredients differ: the mean is a new model


def test_an_ensemble_costs_its_members_together(combined: dict[str, Any]) -> None:
    spec, ensemble = combined["spec"], combined["ensemble"]
    client = MlflowClient(spec.tracking_uri)
    kept = {k.trial: k for k in find_models(spec.tracking_uri, dataset="digits", study="combo")}
    assert sorted(ensemble.members) == sorted(kept)
    members = [client.get_run(kept[t].run_id).data.metrics for t in ensemble.members]
    metrics = client.get_run(ensemble.run_id).data.metrics
    assert metrics["params_total"] == sum(m["params_total"] for m in members)
    assert metrics["flops_fwd_per_image"] == pytest.approx(sum(m["flops_fwd_per_image"] for m in members))


@pytest.mark.parametrize("kind", ["soup", "ensemble"])
def test_the_gate_judges_each_and_its_version_says_why(combined: dict[str, Any], kind: str) -> None:
    spec, outcome = combined["spec"], combined[kind]
    version = get_version(spec.tracking_uri, "combo-digits", outcome.version)
    assert version.tags["promotion_rule"] == "paired_bootstrap" and version.tags["tlb.kind"] == kind
    assert version.tags["promoted"] == str(outcome.decision.promote).lower()
    assert version.tags["promotion_reason"].startswith("paired_bootstrap: accuracy difference")  # paired on val images
    assert "artifactPath/evaluation/report.md" in version.description and float(version.tags["temperature"]) > 0
    names = {f.path for f in MlflowClient(spec.tracking_uri).list_artifacts(outcome.run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/confusion.png", "evaluation/val_predictions.csv"} <= names


def test_challenger_rows_list_soups_and_ensembles_with_their_versions(combined: dict[str, Any]) -> None:
    spec = combined["spec"]
    rows = challenger_rows(spec.tracking_uri, "combo", "digits")
    assert list(rows.columns) == COLUMNS
    made = ("soup", "uniform", "ensemble")
    assert rows[["kind", "run_id", "version"]].values.tolist() == [
        [combined[k].kind, combined[k].run_id, combined[k].version] for k in made]
    assert rows["promoted"].tolist() == [combined[k].decision.promote for k in made]
    assert rows["test_acc"].tolist() == [combined[k].test_acc for k in made]
    champion = aliased(spec.tracking_uri, "combo-digits", "champion")
    assert champion is not None
    assert challenger_rows(spec.tracking_uri, "combo", "other").empty


def test_too_few_compatible_models_is_one_line(combined: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = combined["path"]
    for command in ("soup", "ensemble"):
        capsys.readouterr()
        with pytest.raises(SystemExit) as ended:
            main([command, str(path), "--dataset", "digits", "--top-k", "1"])
        assert ended.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "needs at least 2 kept models" in err[0] and "keep_models: {top_k: K}" in err[0]
