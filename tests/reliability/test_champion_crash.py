"""A study's end cut short at each moment, a model killed while it was logged, an artifact store that is
away during a repair, and a study deleted with Optuna and created again: the summary and the champion
end up whole, nothing is deleted that may come back, and every study keeps its own runs.

Each cut is a real ``tl-bench run`` stopped by a real signal at a named point
(``tl_bench.crash_points``); what follows (the next run, ``tl-bench doctor``, ``predict``) runs in this
process through the CLI's entry point, which is where its imports are already paid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient
from PIL import Image

from fault_support import cli
from reliability_support import parent_runs, run_record, spec_data, tlb, trial_runs, write_spec
from tl_bench.crash_points import ENV
from tl_bench.doctor import diagnose
from tl_bench.spec import StudySpec, load_spec
from tl_bench.study.storage import PARENT_RUN, optuna_study_id
from tl_bench.tracking.logged_models import kept_models
from tl_bench.tracking.model_registry import champion, registered_versions

pytestmark = pytest.mark.slow


def _spec(folder: Path) -> tuple[Path, StudySpec]:
    """One trial of a linear probe on digits at 16 px: a study that ends within seconds."""
    data = spec_data(space={"backbones": ["test_resnet"], "freeze_depth": ["all"], "neck": ["gap"], "head": ["linear"],
                            "lr": [1.0e-2]}, budget={"n_trials": 1})
    path = write_spec(folder, data)
    return path, load_spec(path)


def _killed_run(folder: Path, point: str) -> Any:
    """``tl-bench run`` in a process of its own, stopped by the signal ``point`` names at that point."""
    return tlb(["run", "study.yaml", "--quiet"], cwd=folder, env={ENV: point}, timeout=300)


def _model_name(spec: StudySpec) -> str:
    return spec.registered_model_name(spec.datasets[0])


def _study(spec: StudySpec) -> optuna.Study:
    return optuna.load_study(study_name=spec.study_name(spec.datasets[0]), storage=spec.storage_url)


def _assert_whole(path: Path, spec: StudySpec, capfd: pytest.CaptureFixture[str]) -> None:
    """The study's end is all there: summary metrics on its FINISHED parent run, a champion that predicts,
    and a doctor with nothing to say."""
    uri = spec.tracking_uri
    parent = next(r for r in parent_runs(uri) if r.info.run_id == _study(spec).user_attrs[PARENT_RUN])
    assert parent.info.status == "FINISHED"
    assert {"best_val_acc", "best_trial", "n_complete"} <= set(parent.data.metrics), parent.data.metrics
    assert champion(uri, _model_name(spec)) is not None
    image = path.parent / "digit.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(image)
    predicted = cli(["predict", f"models:/{_model_name(spec)}@champion", str(image), "--tracking-uri", uri], capfd)
    assert predicted.code == 0, predicted.err[-2000:]
    assert diagnose(spec).findings == []


@pytest.mark.parametrize(("point", "code"), [("summary_claimed", -9), ("summary_written:SIGINT", 130),
                                             ("version_registered", -9)],
                         ids=["killed-after-claim", "ctrl-c-while-summarised", "killed-before-alias"])
def test_a_study_end_cut_short_is_finished_by_the_next_run(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str], point: str, code: int
) -> None:
    path, spec = _spec(tmp_path)
    killed = _killed_run(tmp_path, point)
    assert killed.returncode == code, killed.stderr[-3000:]
    if code == 130:  # every trial had ended: none was failed by the interrupt, and the line says so
        assert "recorded as failed in Optuna" not in killed.stderr
        assert f"interrupted during the summary of {spec.study_name(spec.datasets[0])}" in killed.stderr
    assert champion(mlflow_db, _model_name(spec)) is None
    versions = registered_versions(mlflow_db, name=_model_name(spec))
    assert len(versions) == (1 if point == "version_registered" else 0)

    rerun = cli(["run", str(path), "--quiet"], capfd)
    assert rerun.code == 0, rerun.err[-3000:]
    _assert_whole(path, spec, capfd)
    assert len(registered_versions(mlflow_db, name=_model_name(spec))) == 1  # the version made before, now aliased


def test_doctor_repair_finishes_a_study_end_whose_process_was_killed(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path, spec = _spec(tmp_path)
    assert _killed_run(tmp_path, "summary_claimed").returncode == -9

    found = {f.kind for f in diagnose(spec).findings}
    assert found == {"unfinished_summary", "study_run_left_running"}
    done = cli(["doctor", str(path), "--repair", "--json"], capfd)
    assert done.code == 0, done.err[-3000:] + done.out[-3000:]
    assert all(f["repaired"] for f in json.loads(done.out)["findings"])
    _assert_whole(path, spec, capfd)


def test_a_model_killed_while_logged_is_found_and_finished_by_doctor(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path, spec = _spec(tmp_path)
    assert _killed_run(tmp_path, "model_files_logged").returncode == -9
    client = MlflowClient(mlflow_db)
    experiment = client.get_experiment_by_name(spec.name).experiment_id
    [pending] = client.search_logged_models([experiment])
    assert pending.status == LoggedModelStatus.PENDING and not kept_models(mlflow_db, experiment, _study(spec).study_name)

    report = diagnose(spec)
    assert ("model_left_pending", 0) in {(f.kind, f.trial) for f in report.findings}
    done = cli(["doctor", str(path), "--repair", "--json"], capfd)
    assert done.code == 0, done.err[-3000:] + done.out[-3000:]
    repaired = next(f for f in json.loads(done.out)["findings"] if f["kind"] == "model_left_pending")
    assert repaired["repaired"] and "finished" in repaired["repair"]
    assert client.get_logged_model(pending.model_id).status == LoggedModelStatus.READY

    rerun = cli(["run", str(path), "--quiet"], capfd)  # the study ends: its champion is the finished model
    assert rerun.code == 0, rerun.err[-3000:]
    assert champion(mlflow_db, _model_name(spec)).tags["tlb.model_id"] == pending.model_id
    _assert_whole(path, spec, capfd)


def test_a_model_killed_before_its_files_is_removed_by_the_next_run_which_says_so(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path, spec = _spec(tmp_path)
    assert _killed_run(tmp_path, "model_created").returncode == -9
    client = MlflowClient(mlflow_db)
    experiment = client.get_experiment_by_name(spec.name).experiment_id
    [pending] = client.search_logged_models([experiment])
    assert pending.status == LoggedModelStatus.PENDING

    rerun = cli(["run", str(path), "--quiet"], capfd)
    assert rerun.code == 0, rerun.err[-3000:]
    assert "model of trial 0" in rerun.err and "removed" in rerun.err
    assert "holds no model: no version was registered" in rerun.err
    assert client.search_logged_models([experiment]) == []
    assert diagnose(spec).findings == []


def test_doctor_repair_with_the_artifact_store_away_deletes_nothing(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path, spec = _spec(tmp_path)
    assert cli(["run", str(path), "--quiet"], capfd).code == 0
    name, study_name = _model_name(spec), _study(spec).study_name
    experiment = MlflowClient(mlflow_db).get_experiment_by_name(spec.name).experiment_id
    before = ([v.version for v in registered_versions(mlflow_db, name=name)], champion(mlflow_db, name).version,
              kept_models(mlflow_db, experiment, study_name))

    artifacts, away = tmp_path / "runs" / "artifacts", tmp_path / "runs" / "artifacts-unmounted"
    artifacts.rename(away)  # the share is not mounted
    done = cli(["doctor", str(path), "--repair"], capfd)
    assert done.code == 2 and len(done.lines) == 1, done.err
    assert done.lines[0].startswith("error: MLflow artifact store") and "nothing was deleted" in done.lines[0]
    away.rename(artifacts)  # and back

    after = ([v.version for v in registered_versions(mlflow_db, name=name)], champion(mlflow_db, name).version,
             kept_models(mlflow_db, experiment, study_name))
    assert after == before
    _assert_whole(path, spec, capfd)


def test_a_study_deleted_and_created_again_keeps_apart_from_its_namesake(
    tmp_path: Path, mlflow_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path, spec = _spec(tmp_path)
    assert cli(["run", str(path), "--quiet"], capfd).code == 0
    old_parent = _study(spec).user_attrs[PARENT_RUN]
    old_runs = {r.info.run_id: run_record(r) for r in trial_runs(mlflow_db)}
    optuna.delete_study(study_name=_study(spec).study_name, storage=spec.storage_url)

    assert cli(["run", str(path), "--quiet"], capfd).code == 0
    study = _study(spec)
    new_parent = study.user_attrs[PARENT_RUN]
    assert new_parent != old_parent
    parents = {r.info.run_id: r for r in parent_runs(mlflow_db)}
    assert set(parents) == {old_parent, new_parent}
    assert parents[old_parent].data.tags["tlb.optuna_study_id"] != parents[new_parent].data.tags["tlb.optuna_study_id"]
    runs = {r.info.run_id: r for r in trial_runs(mlflow_db)}
    new_run = study.trials[0].user_attrs["mlflow_run_id"]
    assert set(runs) == {*old_runs, new_run}
    assert runs[new_run].data.tags["mlflow.parentRunId"] == new_parent

    report = diagnose(spec, repair=True)
    assert report.findings == []  # the namesake's runs are neither duplicates nor orphans of this study
    assert {k: run_record(runs[k]) for k in old_runs} == old_runs
    kept = kept_models(mlflow_db, MlflowClient(mlflow_db).get_experiment_by_name(spec.name).experiment_id,
                       study.study_name, optuna_study_id(study))
    assert kept[0].run_id == new_run and champion(mlflow_db, _model_name(spec)) is not None
