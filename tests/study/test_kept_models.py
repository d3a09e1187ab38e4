"""The winning model out of a real study: kept, registered as champion, reloaded, exported, predicted.

One small study on digits (a linear probe on cached features) is run, re-run,
and topped up with a better trial; the tests below read the store it leaves.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from tl_bench.cli import main
from tl_bench.data import load_dataset_for
from tl_bench.models import load_bundle
from tl_bench.spec import StudySpec, load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.tracking import MODEL_ID, TRIAL
from tl_bench.tracking.loading import load_model
from tl_bench.tracking.logged_models import find_models
from tl_bench.tracking.model_registry import champion, registered_versions
from tl_bench.tracking.names import shown_value

from .conftest import served_test_accuracy

pytestmark = pytest.mark.slow

BAD_LR, GOOD_LR = 1.0e-5, 0.3  # two epochs of a linear probe: near chance, and far above it


def write_spec(folder: Path, template: Path, **overrides: Any) -> Path:
    """A study file in ``folder`` with a fresh, migrated MLflow store beside it."""
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, folder / "runs" / "mlflow.db")
    data: dict[str, Any] = {
        "name": "keep",
        "datasets": [{"name": "digits", "img_size": 16, "train_size": 200, "val_size": 100}],
        "space": {"backbones": ["test_resnet"], "freeze_depth": ["all"], "lr": [BAD_LR, GOOD_LR]},
        "fixed": {"epochs": 2, "batch_size": 64},
        "sampler": {"name": "random", "seed": 0},
        "budget": {"n_trials": 1},
        "baselines": [{"lr": BAD_LR}],
        **overrides,
    }
    path = folder / "keep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _versions(spec: StudySpec) -> list[tuple[str, str]]:
    """(version, trial) of every registered version, oldest first."""
    found = registered_versions(spec.tracking_uri, name="keep-digits")
    return sorted((str(v.version), v.tags[TRIAL]) for v in found)


def _champion(spec: StudySpec) -> str:
    version = champion(spec.tracking_uri, "keep-digits")
    assert version is not None
    return str(version.version)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Any]:
    """Run one trial, run again, then top up with a better trial; what the registry said each time."""
    spec = load_spec(write_spec(tmp_path_factory.mktemp("keep"), mlflow_template))
    seen: dict[str, Any] = {"spec": spec}
    run_spec(spec, RunOptions(n_trials=1), quiet=True)
    seen["first"] = (_versions(spec), _champion(spec))
    run_spec(spec, RunOptions(n_trials=1), quiet=True)
    seen["rerun"] = (_versions(spec), _champion(spec))
    study = optuna.load_study(study_name="keep/digits", storage=spec.storage_url)
    study.enqueue_trial({"backbone": "test_resnet", "lr": GOOD_LR})
    run_spec(spec, RunOptions(n_trials=2), quiet=True)
    seen["topped_up"] = (_versions(spec), _champion(spec))
    return seen


def test_a_rerun_registers_nothing_and_a_better_top_up_moves_champion(lifecycle: dict[str, Any]) -> None:
    spec = lifecycle["spec"]
    assert lifecycle["first"] == ([("1", "0")], "1")
    assert lifecycle["rerun"] == lifecycle["first"]
    assert lifecycle["topped_up"] == ([("1", "0"), ("2", "1")], "2")
    study = optuna.load_study(study_name="keep/digits", storage=spec.storage_url)
    assert study.trials[1].values[0] > study.trials[0].values[0]
    # keep_models best: trial 1 holds the model; trial 0's stays only because version 1 points to it.
    kept = {m.trial: m for m in find_models(spec.tracking_uri, dataset="digits", study="keep")}
    assert set(kept) == {0, 1}
    assert registered_versions(spec.tracking_uri, name="keep-digits")[0].tags[MODEL_ID] in {
        kept[0].model_id, kept[1].model_id}


@pytest.mark.parametrize("trial", [0, 1])
def test_the_reloaded_model_reproduces_its_trials_test_accuracy(lifecycle: dict[str, Any], trial: int) -> None:
    spec = lifecycle["spec"]
    accuracy = served_test_accuracy(spec, f"models:/keep-digits/{trial + 1}")
    run_id = find_models(spec.tracking_uri, dataset="digits", study="keep")[trial].run_id
    assert shown_value(accuracy) == MlflowClient(spec.tracking_uri).get_run(run_id).data.metrics["test_acc"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "tl_bench", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)


def write_images(folder: Path, spec: StudySpec, count: int = 2) -> list[str]:
    """``count`` test images of the study as PNG files, plus a file that is no image; their true classes."""
    data = load_dataset_for(spec.datasets[0].data_settings)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(data.test.images[index].permute(1, 2, 0).numpy()).save(folder / f"img{index}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    return [data.class_names[i] for i in data.test.labels[:count].tolist()]


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """A command that must fail as a user error, run in this process: its stderr lines (exit code 2 checked)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    assert ended.value.code == 2
    return capsys.readouterr().err.strip().splitlines()


def test_export_writes_a_model_folder_and_plain_files_that_agree(
    lifecycle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = lifecycle["spec"]
    proc = _cli("export", "--spec", str(spec.source_path), "--dataset", "digits", "--out", str(tmp_path / "out"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "trial 1" in proc.stdout and "champion, version 2" in proc.stdout
    images = tmp_path / "images"
    write_images(images, spec)
    files = [(images / f"img{i}.png").read_bytes() for i in range(2)]
    with_mlflow = load_model(str(tmp_path / "out")).predict(pd.DataFrame({"image": files}))
    bundle = load_bundle(tmp_path / "out")  # tl_bench.models alone: no MLflow
    assert bundle.card["trial"] == 1 and bundle.config.lr == GOOD_LR
    pixels = torch.stack([torch.from_numpy(np.array(Image.open(images / f"img{i}.png"))).permute(2, 0, 1)
                          for i in range(2)])
    with torch.no_grad():
        plain = bundle.network()(pixels)
    assert [bundle.class_names[i] for i in plain.argmax(1).tolist()] == with_mlflow["label"].tolist()
    # A second export into the same folder, and a trial without a model, are one line each.
    again = _main(capsys, "export", "--spec", str(spec.source_path), "--dataset", "digits", "--out",
                  str(tmp_path / "out"))
    assert again == [f"error: --out {tmp_path / 'out'} is not an empty folder; accepted: a new or empty folder"]
    missing = _main(capsys, "export", "--spec", str(spec.source_path), "--dataset", "digits", "--trial", "5",
                    "--out", str(tmp_path / "other"))
    assert missing == ["error: trial 5 of dataset 'digits' of study 'keep' holds no model; trials that do: 0, 1"]


def test_predict_names_files_classes_and_skips_what_is_no_image(
    lifecycle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = lifecycle["spec"]
    write_images(tmp_path / "images", spec)
    proc = _cli("predict", "models:/keep-digits@champion", "images", "--spec", str(spec.source_path),
                "--top-k", "3", "--csv", "out.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "skipped broken.png: not an image" in proc.stderr
    rows = pd.read_csv(tmp_path / "out.csv", dtype={"label_1": str, "label_2": str, "label_3": str})
    assert rows["file"].tolist() == ["img0.png", "img1.png"]
    assert list(rows.columns) == ["file"] + [f"{k}_{r}" for r in (1, 2, 3) for k in ("label", "probability")]
    assert (rows["probability_1"] >= rows["probability_2"]).all() and (rows["probability_2"] >= rows["probability_3"]).all()
    pyfunc = load_model("models:/keep-digits@champion", spec.tracking_uri)
    files = [(tmp_path / "images" / f"img{i}.png").read_bytes() for i in range(2)]
    assert rows["label_1"].tolist() == pyfunc.predict(pd.DataFrame({"image": files}))["label"].tolist()
    nothing = _main(capsys, "predict", "models:/keep-digits@nobody", str(tmp_path / "images"), "--spec",
                    str(spec.source_path))
    assert len(nothing) == 1 and nothing[0].startswith("error: cannot load model 'models:/keep-digits@nobody'")
    no_images = _main(capsys, "predict", "models:/keep-digits@champion", str(tmp_path / "images" / "broken.png"),
                      "--spec", str(spec.source_path))
    assert no_images[-1].startswith(f"error: no readable image in {tmp_path / 'images' / 'broken.png'}")


def test_mlflow_models_serve_answers_as_predict_does(
    lifecycle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mlflow models serve -m models:/keep-digits@champion --env-manager local`` on loopback, two images posted."""
    from tl_bench.report import free_port

    spec = lifecycle["spec"]
    write_images(tmp_path / "images", spec)
    port = free_port("127.0.0.1")
    # The server runs `uvicorn` from PATH, as in an activated environment.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": spec.tracking_uri, "OMP_NUM_THREADS": "1", "PATH": path}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/keep-digits@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"),
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the model server did not answer /ping"
            time.sleep(1)
        files = [(tmp_path / "images" / f"img{i}.png").read_bytes() for i in range(2)]
        body = {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(f).decode()] for f in files]}}
        request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            served = json.loads(answer.read())["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert len(served) == 2 and all(len(row["probabilities"]) == 10 for row in served)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:  # `tl-bench predict`, in this process
        main(["predict", "models:/keep-digits@champion", str(tmp_path / "images"), "--spec", str(spec.source_path),
              "--top-k", "1", "--csv", str(tmp_path / "predicted.csv")])
    assert done.value.code == 0
    predicted = pd.read_csv(tmp_path / "predicted.csv", dtype={"label_1": str})
    assert predicted["label_1"].tolist() == [row["label"] for row in served]
    assert predicted["probability_1"].tolist() == pytest.approx([row["probability"] for row in served])


def test_doctor_removes_a_version_whose_run_is_gone(lifecycle: dict[str, Any]) -> None:
    from tl_bench.doctor import diagnose

    spec = lifecycle["spec"]
    old = find_models(spec.tracking_uri, dataset="digits", study="keep")[0]
    MlflowClient(spec.tracking_uri).delete_run(old.run_id)
    found = [f for f in diagnose(spec).findings if f.kind == "version_without_model"]
    assert [(f.trial, f.repaired) for f in found] == [(0, False)] and "is deleted" in found[0].detail
    repaired = [f for f in diagnose(spec, repair=True).findings if f.kind == "version_without_model"]
    assert [(f.trial, f.repaired) for f in repaired] == [(0, True)]
    assert _versions(spec) == [("2", "1")] and _champion(spec) == "2"
    assert not [f for f in diagnose(spec).findings if f.kind == "version_without_model"]


def test_a_long_study_keeps_one_model_on_disk(tmp_path: Path, mlflow_template: Path) -> None:
    """30 trials with keep_models best: one trial holds weights, the run that the MLflow UI lists with a model."""
    spec = load_spec(write_spec(
        tmp_path, mlflow_template, datasets=[{"name": "digits", "img_size": 16, "train_size": 100, "val_size": 60}],
        space={"backbones": ["test_resnet"], "freeze_depth": ["all"], "lr": {"low": 1.0e-4, "high": 1.0, "log": True}},
        fixed={"epochs": 1, "batch_size": 100}, budget={"n_trials": 30}, baselines=[]))
    run_spec(spec, RunOptions(), quiet=True)
    study = optuna.load_study(study_name="keep/digits", storage=spec.storage_url)
    best = max(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: (t.values[0], -t.number))
    on_disk = sorted((tmp_path / "runs" / "artifacts" / "models").glob("*/artifacts/MLmodel"))
    assert len(on_disk) == 1 and len(list(tmp_path.rglob("model.safetensors"))) == 1
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name("keep").experiment_id
    runs = client.search_runs([experiment], "tags.`tlb.kind` = 'trial'", max_results=100)
    assert len(runs) == 30
    live = {m.model_id for m in client.search_logged_models([experiment])}
    with_model = [r for r in runs if any(o.model_id in live for o in (r.outputs.model_outputs if r.outputs else []))]
    assert [r.data.tags[TRIAL] for r in with_model] == [str(best.number)]
    assert on_disk[0].parent.parent.name in live
    assert _versions(spec) == [("1", str(best.number))]


def test_keep_models_none_keeps_and_registers_nothing(tmp_path: Path, mlflow_template: Path) -> None:
    spec = load_spec(write_spec(tmp_path, mlflow_template, keep_models="none"))
    run_spec(spec, RunOptions(n_trials=1), quiet=True)
    assert find_models(spec.tracking_uri, dataset="digits") == []
    assert champion(spec.tracking_uri, "keep-digits") is None
    assert not (tmp_path / "runs" / "artifacts" / "models").exists()
