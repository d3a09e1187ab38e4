"""Mistakes found early and told in one line (``error: ...``, exit 2), with nothing left behind: a study
file beyond MLflow's bounds, a dead Dask scheduler, a ``runs`` link to nothing, an export of a model
whose files are gone, a predictions CSV that cannot be written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from limits_stores_ui_cases import closed_port
from reliability_support import spec_data, store_snapshot, write_spec
from tl_bench.cli import main


def one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a command that fails as a user error (exit 2, nothing on stdout)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert ended.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert out == ""  # nothing was classified, trained or printed before the mistake was found
    return lines[0]


@pytest.fixture
def study_folder(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder with the spec's default MLflow store already migrated, as the working folder."""
    (tmp_path / "runs").mkdir()
    shutil.copyfile(mlflow_template, tmp_path / "runs" / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("field", "value", "limit"), [("name", "n" * 520, 200), ("description", "d" * 200_000, 6000)])
def test_a_study_file_beyond_mlflows_bounds_is_told_before_any_store(
    study_folder: Path, capsys: pytest.CaptureFixture[str], field: str, value: str, limit: int
) -> None:
    write_spec(study_folder, spec_data(**{field: value}))
    before = store_snapshot(study_folder)
    line = one_line(["run", "study.yaml"], capsys)
    assert line.startswith(f"error: study.yaml: {field}: {len(value)} characters, more than {limit}; accepted: ")
    assert line.endswith(f"at most {limit} characters") and len(line) < 300
    assert store_snapshot(study_folder) == before and not (study_folder / "runs" / "optuna.db").exists()


def test_the_bounds_are_within_mlflows_own() -> None:
    from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH, MAX_TAG_VAL_LENGTH

    from tl_bench.spec.study import DESCRIPTION_MAX, NAME_MAX

    assert NAME_MAX < 256 <= MAX_EXPERIMENT_NAME_LENGTH  # <name>-<key> goes in MLflow's 256-character columns
    assert DESCRIPTION_MAX < MAX_TAG_VAL_LENGTH


@pytest.mark.slow  # the run command imports torch before it reaches the check
@pytest.mark.parametrize("credentials", ["", "user:secret@"])
def test_a_dead_dask_scheduler_is_told_before_anything_is_created(
    study_folder: Path, capsys: pytest.CaptureFixture[str], credentials: str
) -> None:
    write_spec(study_folder)
    before = store_snapshot(study_folder)
    address = f"tcp://{credentials}127.0.0.1:{closed_port()}"
    line = one_line(["run", "study.yaml", "--dask", address, "--workers", "2"], capsys)
    assert "secret" not in line
    shown = re.escape(address.replace("secret", "***"))
    assert re.fullmatch(rf"error: (no Dask scheduler answers at '{shown}' \(.+\)|--dask '{shown}' is not a scheduler "
                        r"address); accepted: 'local', or the address of a running .*", line), line
    assert store_snapshot(study_folder) == before and not (study_folder / "runs" / "optuna.db").exists()


@pytest.mark.slow
def test_a_runs_link_to_nothing_is_one_line_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_spec(tmp_path)
    (tmp_path / "runs").symlink_to(tmp_path / "moved-disk" / "runs")
    line = one_line(["run", "study.yaml"], capsys)
    assert f"{tmp_path / 'runs'} is a link to {tmp_path / 'moved-disk' / 'runs'}, which does not exist" in line
    assert "accepted: a link to an existing folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "study.yaml"]
    assert not (tmp_path / "moved-disk").exists()


# -- a study with a kept model: export and predict ------------------------------------------------------------


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Any]:
    """One trial on digits whose model is kept and registered (keep-digits@champion), and two images."""
    from tl_bench.spec import load_spec
    from tl_bench.study import RunOptions, run_spec

    folder = tmp_path_factory.mktemp("kept")
    (folder / "runs").mkdir()
    shutil.copyfile(mlflow_template, folder / "runs" / "mlflow.db")
    spec = load_spec(write_spec(folder, spec_data(name="keep", space={"backbones": ["test_resnet"],
                                                                         "freeze_depth": ["all"], "lr": [0.3]},
                                                  budget={"n_trials": 1})))
    run_spec(spec, RunOptions(n_trials=1), quiet=True)
    for index in range(2):
        pixels = np.random.default_rng(index).integers(0, 255, (16, 16, 3), dtype=np.uint8)
        (folder / "images").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(folder / "images" / f"{index}.png")
    return {"spec": str(spec.source_path), "uri": spec.tracking_uri, "images": str(folder / "images")}


@pytest.mark.slow
def test_export_of_a_model_whose_files_are_gone_is_one_line_and_writes_nothing(
    kept: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    from tl_bench.tracking.logged_models import find_models

    model = find_models(kept["uri"], dataset="digits", study="keep")[0]
    files = Path(MlflowClient(kept["uri"]).get_logged_model(model.model_id).artifact_location.removeprefix("file://"))
    away = tmp_path / "away"
    shutil.move(files, away)  # the logged model's folder deleted by hand
    try:
        for out in (tmp_path / "new", tmp_path / "empty"):
            if out.name == "empty":
                out.mkdir()
            line = one_line(["export", "--spec", kept["spec"], "--dataset", "digits", "--out", str(out)], capsys)
            assert re.fullmatch(r"error: the kept model of trial 0 \(.*\) has no files in the store \(MLmodel, "
                                r"artifacts/config\.json, artifacts/model\.safetensors missing from .*\); "
                                r"accepted: a kept model whose files are in the store .*", line), line
            assert (out.exists(), list(out.iterdir()) if out.exists() else []) == (out.name == "empty", [])
    finally:
        shutil.move(away, files)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["folder", "below_a_file"])
def test_predict_checks_its_csv_path_before_classifying(
    kept: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "file.txt").write_text("a file, not a folder")
    csv = {"folder": tmp_path, "below_a_file": tmp_path / "file.txt" / "out.csv"}[where]
    line = one_line(["predict", "models:/keep-digits@champion", kept["images"], "--spec", kept["spec"],
                     "--csv", str(csv)], capsys)
    reason = {"folder": "it is a folder", "below_a_file": f"{tmp_path / 'file.txt'} is a file, not a folder"}[where]
    assert line == (f"error: cannot write the predictions to {csv}: {reason}; accepted: a file path in an existing, "
                    "writable folder, or in a new folder below the working folder")
    assert (tmp_path / "file.txt").read_text() == "a file, not a folder"
