"""The promotion gate in a real study, the evaluation report of every registered version, and
``tl-bench evaluate`` / ``predict --calibrated`` on the versions it leaves.

A/A: one setting trained with one seed becomes the champion; a second seed of the same setting
that validates better becomes the first row's representative and a new version, which the
gate (``lcb``) must not promote: the same recipe again is no evidence of a better one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from rich.console import Console

from tl_bench.cli import main
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.data import load_dataset_for
from tl_bench.evaluation import rescale_probabilities
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.tracking import TRIAL
from tl_bench.tracking.loading import load_model
from tl_bench.tracking.model_registry import aliased, champion, registered_versions
from tl_bench.train import train_config

from .test_kept_models import write_spec

pytestmark = pytest.mark.slow

VALS = [0.80, 0.85]  # validation accuracy reported by the first and the second trial trained


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("gate")
    path = write_spec(folder, mlflow_template, name="gate", baselines=[], sampler={"name": "grid", "seed": 0},
                      space={"backbones": ["test_resnet"], "freeze_depth": ["all"], "lr": [0.3], "seed": [0, 1]},
                      budget={"n_trials": 1})
    spec = load_spec(path)
    reported = iter(VALS)

    def train(config: TrialConfig, **kwargs: Any) -> TrialResult:
        # the real trial, then the validation figure of the table: the second seed is the better one, whichever it is
        result = train_config(config, **kwargs)
        result.val_acc = next(reported)
        return result

    run_spec(spec, RunOptions(n_trials=1), quiet=True, train_fn=train)
    first = champion(spec.tracking_uri, "gate-digits")
    outcomes = run_spec(spec, RunOptions(n_trials=2), quiet=True, train_fn=train)
    return {"spec": spec, "path": path, "first": first, "outcomes": outcomes}


def test_a_second_seed_of_the_champion_setting_is_registered_but_not_promoted(gated: dict[str, Any]) -> None:
    spec = gated["spec"]
    study = optuna.load_study(study_name="gate/digits", storage=spec.storage_url)
    assert [t.values[0] for t in study.trials] == VALS and len({t.params["seed"] for t in study.trials}) == 2
    versions = sorted(registered_versions(spec.tracking_uri, name="gate-digits"), key=lambda v: int(v.version))
    assert [(str(v.version), v.tags[TRIAL]) for v in versions] == [("1", "0"), ("2", "1")]
    first, second = versions
    assert first.tags["promoted"] == "true" and first.tags["promotion_reason"] == "lcb: no champion yet -> promote"
    assert second.tags["promotion_rule"] == "lcb" and second.tags["promoted"] == "false"
    assert "keep the champion" in second.tags["promotion_reason"]
    assert str(champion(spec.tracking_uri, "gate-digits").version) == "1"  # type: ignore[union-attr]
    assert str(aliased(spec.tracking_uri, "gate-digits", "challenger").version) == "2"  # type: ignore[union-attr]
    # the champion's score was refreshed with the setting's second seed: the same numbers the challenger has
    current = champion(spec.tracking_uri, "gate-digits")
    assert current is not None and current.tags["setting_n_seeds"] == "2"
    assert float(current.tags["setting_val_acc_mean"]) == pytest.approx(sum(VALS) / 2)


def test_the_closing_lines_of_a_run_say_why(gated: dict[str, Any]) -> None:
    from tl_bench.cli.run_cmd import _print_models

    out = io.StringIO()
    _print_models(Console(file=out, width=300), gated["spec"], gated["outcomes"], "--spec gate.yaml")
    text = out.getvalue()
    assert "Registered model:  gate-digits version 1 (alias champion; trial 0)" in text
    assert "Latest version 2 (trial 1) not promoted (alias challenger): lcb: challenger val_acc lcb" in text
    assert "Evaluation report:  test top-1" in text and "artifactPath/evaluation/report.md" in text


@pytest.mark.parametrize("number", ["1", "2"])
def test_every_version_has_its_report_on_its_run_linked_from_its_description(gated: dict[str, Any], number: str) -> None:
    spec = gated["spec"]
    client = MlflowClient(spec.tracking_uri)
    version = client.get_model_version("gate-digits", number)
    route = version.tags["report_link"]
    experiment = client.get_run(version.run_id).info.experiment_id
    assert route == (f"#/experiments/{experiment}/runs/{version.run_id}/artifactPath/evaluation/report.md"
                     "?workflowType=machine_learning")
    assert f"[report.md]({route})" in version.description
    assert version.description.startswith("**gate-digits**: the first setting")
    names = {f.path.split("/")[-1] for f in client.list_artifacts(version.run_id, "evaluation")}
    assert {"report.md", "report.html", "confusion.png", "confusion.csv", "per_class.csv", "summary.json",
            "val_predictions.csv"} <= names
    summary = json.loads(Path(client.download_artifacts(version.run_id, "evaluation/summary.json")).read_text())
    assert summary["ece_bins"] == 15 and summary["temperature_fit_on"] == "validation"
    assert summary["temperature"] == pytest.approx(float(version.tags["temperature"]))
    logged_test_acc = client.get_run(version.run_id).data.metrics["test_acc"]
    assert summary["top1"] == pytest.approx(logged_test_acc)  # the report's model is the trial's model
    assert len(summary["worst_pairs"]) > 0 and summary["top5"] is not None


def _labelled_folder(folder: Path, spec: Any, count: int = 40) -> list[str]:
    data = load_dataset_for(spec.datasets[0].data_settings)
    names = []
    for index in range(count):
        name = data.class_names[int(data.test.labels[index])]
        (folder / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.test.images[index].permute(1, 2, 0).numpy()).save(folder / name / f"img{index}.png")
        names.append(name)
    return names


def test_evaluate_on_an_image_folder_writes_an_evaluation_run_with_the_report(
    gated: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, path = gated["spec"], gated["path"]
    truth = _labelled_folder(tmp_path / "images", spec)
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main(["evaluate", "models:/gate-digits@champion", str(tmp_path / "images"), "--spec", str(path)])
    assert ended.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"gate-digits version 1 on image folder {tmp_path / 'images'}: top-1 ")
    client = MlflowClient(spec.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("gate").experiment_id], "tags.`tlb.kind` = 'evaluation'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["tlb.evaluated"] == "models:/gate-digits@champion"
    assert run.data.tags["tlb.evaluated_version"] == "gate-digits/1"
    names = {f.path for f in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/report.html", "evaluation/confusion.png"} <= names
    assert run.info.run_id in out and "report.html" in out
    # the report's top-1 is the served model's accuracy on those files; the temperature is the version's
    files = sorted((tmp_path / "images").rglob("*.png"))
    predicted = load_model("models:/gate-digits@champion", spec.tracking_uri).predict(
        pd.DataFrame({"image": [f.read_bytes() for f in files]}))["label"]
    accuracy = sum(p == f.parent.name for p, f in zip(predicted, files)) / len(files)
    assert run.data.metrics["top1"] == pytest.approx(accuracy) and run.data.metrics["n_images"] == len(truth)
    version = client.get_model_version("gate-digits", "1")
    assert run.data.metrics["temperature"] == pytest.approx(float(version.tags["temperature"]))
    assert run.data.params["temperature_fit_on"] == "stored with the model"


def test_evaluate_and_predict_calibrated_errors_are_one_line(
    gated: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = gated["path"]
    (tmp_path / "images" / "not-a-digit").mkdir(parents=True)
    _labelled_folder(tmp_path / "images", gated["spec"], count=2)
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "not-a-digit" / "x.png")
    cases = [(["evaluate", "models:/gate-digits@champion", str(tmp_path / "images"), "--spec", str(path)],
              "error: class folder 'not-a-digit' of "),
             (["evaluate", "models:/gate-digits@nobody", "--spec", str(path)],
              "error: no registered version 'models:/gate-digits@nobody'"),
             (["evaluate", "models:/gate-digits@champion", "--dataset", "digits"], "error: --dataset needs --spec")]
    for args, start in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as ended:
            main(args)
        assert ended.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(start), err


def test_predict_calibrated_divides_the_logits_by_the_stored_temperature(
    gated: dict[str, Any], tmp_path: Path
) -> None:
    spec, path = gated["spec"], gated["path"]
    _labelled_folder(tmp_path / "images", spec, count=3)
    rows = {}
    for name, extra in (("plain", []), ("calibrated", ["--calibrated"])):
        with pytest.raises(SystemExit) as ended:
            main(["predict", "models:/gate-digits@champion", str(tmp_path / "images"), "--spec", str(path),
                  "--top-k", "10", "--csv", str(tmp_path / f"{name}.csv"), *extra])
        assert ended.value.code == 0
        rows[name] = pd.read_csv(tmp_path / f"{name}.csv", dtype=str)
    temperature = float(MlflowClient(spec.tracking_uri).get_model_version("gate-digits", "1").tags["temperature"])
    assert temperature != 1.0
    for (_, plain), (_, calibrated) in zip(rows["plain"].iterrows(), rows["calibrated"].iterrows()):
        order = [plain[f"label_{r}"] for r in range(1, 11)]
        probs = [float(plain[f"probability_{r}"]) for r in range(1, 11)]
        expected = dict(zip(order, rescale_probabilities([probs], temperature)[0]))
        assert calibrated["label_1"] == plain["label_1"]  # scaling never changes the order
        for r in range(1, 11):
            assert float(calibrated[f"probability_{r}"]) == pytest.approx(expected[calibrated[f"label_{r}"]], abs=1e-6)


def test_evaluate_on_the_study_test_split_fits_the_temperature_on_validation(
    gated: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, path = gated["spec"], gated["path"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main(["evaluate", "models:/gate-digits/2", "--dataset", "digits", "--spec", str(path)])
    assert ended.value.code == 0
    assert capsys.readouterr().out.startswith("gate-digits version 2 on digits test split: top-1 ")
    client = MlflowClient(spec.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("gate").experiment_id],
                              "tags.`tlb.evaluated` = 'models:/gate-digits/2'")
    assert len(runs) == 1
    version = client.get_model_version("gate-digits", "2")
    metrics = runs[0].data.metrics  # the same numbers as the report made when the version was registered
    assert metrics["top1"] == pytest.approx(float(version.tags["eval_test_top1"]))
    assert metrics["temperature"] == pytest.approx(float(version.tags["temperature"]))
    assert runs[0].data.params["temperature_fit_on"] == "validation"
