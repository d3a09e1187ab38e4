"""tl-bench refit: the first leaderboard setting retrained on train + val, recorded and registered as challenger."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tl_bench.cli import main
from tl_bench.report import leaderboard
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.tracking import KIND, TRIAL
from tl_bench.tracking.logged_models import find_models
from tl_bench.tracking.model_registry import aliased, champion

from .test_kept_models import write_spec

pytestmark = pytest.mark.slow


def test_refit_records_an_interval_and_registers_a_challenger(tmp_path: Path, mlflow_template: Path, capsys) -> None:
    path = write_spec(tmp_path, mlflow_template, budget={"n_trials": 2}, fixed={"epochs": 3, "batch_size": 64})
    spec = load_spec(path)
    with pytest.raises(SystemExit) as exit_info:
        main(["refit", str(path), "--dataset", "digits"])
    assert exit_info.value.code == 2
    assert "error: no study 'keep' in the store" in capsys.readouterr().err  # one line, nothing to refit yet

    run_spec(spec, RunOptions(), quiet=True)
    first = leaderboard(spec.tracking_uri, study="keep", dataset="digits").iloc[0]
    before = champion(spec.tracking_uri, "keep-digits")
    with pytest.raises(SystemExit) as exit_info:
        main(["refit", str(path), "--dataset", "digits", "--seeds", "2"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"refit of trial {int(first['trial'])}" in out and "95% interval" in out

    client = MlflowClient(spec.tracking_uri)
    refits = client.search_runs([client.get_experiment_by_name("keep").experiment_id], "tags.`tlb.kind` = 'refit'")
    assert len(refits) == 1
    run = refits[0]
    per_seed = [m.value for m in client.get_metric_history(run.info.run_id, "test_acc")]
    assert len(per_seed) == 2
    assert run.data.metrics["test_acc_mean"] == pytest.approx(sum(per_seed) / 2)
    assert run.data.metrics["test_acc_ci95_low"] <= run.data.metrics["test_acc_mean"] <= run.data.metrics[
        "test_acc_ci95_high"]
    source = client.get_run(str(first["run_id"]))
    assert run.data.params["refit_epochs"] == str(int(source.data.metrics["best_epoch"]))
    assert run.data.params["select"] == "last"
    assert run.data.tags["mlflow.parentRunId"] == source.data.tags["mlflow.parentRunId"]
    # 200 training and 100 validation images of the study's split, trained on together
    assert int(run.data.params["train_size"]) == 200 and run.data.tags[TRIAL] == str(int(first["trial"]))

    challenger = aliased(spec.tracking_uri, "keep-digits", "challenger")
    assert challenger is not None and challenger.tags[KIND] == "refit"
    after = champion(spec.tracking_uri, "keep-digits")
    assert before is not None and after is not None and after.version == before.version != challenger.version
    assert all(m.run_id != run.info.run_id for m in find_models(spec.tracking_uri, dataset="digits"))
