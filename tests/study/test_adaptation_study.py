"""A study that searches adaptation methods, into real MLflow and Optuna stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tl_bench.errors import SpecError
from tl_bench.report.leaderboard import leaderboard
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.study.space import SearchSpace
from tl_bench.tracking.logged_models import ADAPTER_FILE, find_models
from tl_bench.tracking.names import shown_value

from .conftest import served_test_accuracy, small_spec

pytestmark = pytest.mark.slow
METHODS = ["full", "bitfit", "norm", "lora", "ia3", "prompt"]


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("adapt")
    (folder / "runs").mkdir()
    (folder / "runs" / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    path = small_spec(folder, name="adapt", space={"backbones": ["test_vit"], "freeze_depth": ["all"],
                                                   "adaptation": METHODS, "lr": [0.01]},
                      sampler={"name": "grid"}, budget={"n_trials": len(METHODS)},
                      fixed={"epochs": 1, "batch_size": 64, "lora_r": 4},
                      keep_models={"top_k": len(METHODS)})
    spec = load_spec(path)
    run_spec(spec, RunOptions(), quiet=True)
    return {"spec": spec, "board": leaderboard(spec.tracking_uri, study="adapt")}


def test_every_method_runs_once_and_the_board_shows_its_cost(studied: dict[str, Any]) -> None:
    board = studied["board"].set_index("adaptation")
    assert sorted(board.index) == sorted(METHODS)
    trainable = board["params_trainable"]
    assert trainable["full"] < trainable["prompt"] < trainable["bitfit"]  # a probe trains only its head
    assert trainable["ia3"] < trainable["lora"]
    assert (board["adapter_mb"] > 0).all()
    assert board.loc["lora", "adapter_mb"] > board.loc["full", "adapter_mb"]
    # no method changes the cache's answer: only the probe reads cached features
    client = MlflowClient(studied["spec"].tracking_uri)
    cached = {m: client.get_run(board.loc[m, "run_id"]).data.tags["tlb.cache_used"] for m in METHODS}
    assert cached == {m: str(m == "full").lower() for m in METHODS}


def test_a_kept_lora_model_serves_merged_and_reproduces_its_test_accuracy(studied: dict[str, Any]) -> None:
    spec, board = studied["spec"], studied["board"].set_index("adaptation")
    run_id = board.loc["lora", "run_id"]
    kept = {m.run_id: m for m in find_models(spec.tracking_uri, dataset="digits", study="adapt")}[run_id]
    client = MlflowClient(spec.tracking_uri)
    folder = Path(client.download_artifacts(run_id, ADAPTER_FILE)).parent  # the unmerged adapter beside it
    assert (folder / "adapter.safetensors").stat().st_size > 0
    accuracy = served_test_accuracy(spec, f"models:/{kept.model_id}")
    assert shown_value(accuracy) == client.get_run(run_id).data.metrics["test_acc"]  # logged to 6 digits


def test_depth_zero_is_offered_only_without_a_method(tmp_path: Path) -> None:
    spec = load_spec(small_spec(tmp_path, space={"backbones": ["test_vit", "test_resnet"], "freeze_depth": [0, "all"],
                                                 "adaptation": ["lora", "prompt"]}))
    space = SearchSpace(spec, {"test_vit": 7, "test_resnet": 5})
    assert space.depths == {"test_vit": ["all"], "test_resnet": ["all"]}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = set()
    for _ in range(30):
        trial = study.ask()
        values = space.suggest(trial)
        drawn.add((values["backbone"], values["adaptation"]))
        study.tell(trial, 0.5)
    assert drawn == {("test_vit", "lora"), ("test_vit", "prompt"), ("test_resnet", "lora")}


@pytest.mark.parametrize(("space", "words"), [
    ({"backbones": ["test_resnet"], "freeze_depth": [0], "adaptation": ["full", "lora"]},
     "space.adaptation[1]: adaptation 'lora' applies to the frozen stages and space.freeze_depth freezes none"),
    ({"backbones": ["test_resnet"], "freeze_depth": ["all"], "adaptation": ["prompt"]},
     "space.adaptation[0]: adaptation 'prompt' needs a ViT-like backbone with tokens"),
    ({"backbones": ["test_resnet"], "freeze_depth": ["all"], "adaptation": ["loraa"]},
     "space.adaptation[0]"),
])
def test_a_method_that_cannot_apply_is_refused_in_one_line(tmp_path: Path, space: dict, words: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(small_spec(tmp_path, space=space))
    assert words in str(err.value) and "\n" not in str(err.value)
