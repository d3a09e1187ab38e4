"""Loading valid study files: values, shorthands, paths relative to the file, overrides, digest."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import optuna
import pytest
import torch
from safetensors.torch import save_file

from tl_bench.config import TrialConfig
from tl_bench.errors import SpecError
from tl_bench.spec import CategoricalRange, FloatRange, IntRange, load_spec, parse_spec


def test_values_of_a_valid_study(base: dict[str, Any], write_spec: Callable[..., Path]) -> None:
    spec = load_spec(write_spec(base))
    assert spec.name == "small" and spec.description.startswith("two tiny")
    (ds,) = spec.datasets
    assert (ds.name, ds.key, ds.img_size, ds.train_size, ds.val_size) == ("digits", "digits", 32, 100, 50)
    assert [b.name for b in spec.space.backbones] == ["test_resnet", "test_vit"]
    assert spec.space.backbones[0].weights == ["scratch", "local:shapes"]
    assert spec.space.freeze_depth == [0, 2, "all"]
    assert spec.space.hyper["lr"] == FloatRange(low=1e-4, high=1e-2, log=True)
    assert spec.space.hyper["epochs"] == CategoricalRange(choices=[1, 2])
    assert spec.space.searched_names == ["backbone", "weights", "freeze_depth", "adaptation", "neck", "head", "lr", "epochs"]
    assert spec.objective.directions == ["maximize"] and spec.objective.metrics == ["val_acc"]
    assert spec.sampler.name == "tpe" and spec.sampler.options()["seed"] == 0
    assert spec.pruner.name == "median" and spec.pruner.options()["n_startup_trials"] == 5
    assert (spec.budget.n_trials, spec.budget.timeout_s) == (4, None)
    assert spec.baselines == [{"backbone": "test_resnet", "weights": "scratch", "freeze_depth": "all"}]
    pre = spec.pretrain["shapes"]
    assert (pre.dataset.name, pre.dataset.options, pre.epochs, pre.batch_size) == ("shapes", {"num_classes": 4}, 1, 64)


def test_shorthands_and_defaults(write_spec: Callable[..., Path]) -> None:
    text = """
name: short
datasets: [digits]
space:
  backbones: [test_resnet]
sampler: random
pruner: hyperband
budget: {timeout_s: 60}
"""
    spec = load_spec(write_spec(text))
    assert spec.datasets[0].name == "digits" and spec.datasets[0].img_size == 32
    assert spec.space.backbones[0].weights == ["scratch"]
    assert (spec.space.freeze_depth, spec.space.neck, spec.space.head) == ([0], ["gap"], ["linear"])
    assert spec.space.hyper == {} and spec.fixed == {} and spec.baselines == [] and spec.pretrain == {}
    assert spec.sampler.name == "random" and spec.sampler.options() == {"seed": None}
    assert spec.pruner.options() == {
        "min_resource": 1, "max_resource": "auto", "reduction_factor": 3, "bootstrap_count": 0
    }
    assert spec.budget.timeout_s == 60.0 and spec.budget.n_trials is None


def test_yaml_exponents_and_int_bounds_take_trialconfig_types(write_spec: Callable[..., Path]) -> None:
    # PyYAML reads 1e-3 (no dot) as a string; the field types decide what it means.
    text = """
name: types
datasets: [digits]
space:
  backbones: [test_resnet]
  lr: {low: 1e-4, high: 1e-2, log: true}
  warmup_epochs: {low: 0, high: 2}
  batch_size: {low: 16, high: 64, step: 16}
  label_smoothing: [0, 0.1]
fixed: {weight_decay: 5e-4, grad_clip: null}
budget: {n_trials: 1}
"""
    spec = load_spec(write_spec(text))
    assert spec.space.hyper["lr"] == FloatRange(low=1e-4, high=1e-2, log=True)
    assert spec.space.hyper["warmup_epochs"] == FloatRange(low=0.0, high=2.0)  # float field widens int bounds
    assert spec.space.hyper["batch_size"] == IntRange(low=16, high=64, step=16)
    choices = spec.space.hyper["label_smoothing"].choices
    assert choices == [0.0, 0.1] and all(type(c) is float for c in choices)
    assert spec.fixed == {"weight_decay": 5e-4, "grad_clip": None}


def test_paths_resolve_against_the_study_file(
    write_spec: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    save_file({"w": torch.zeros(3)}, str(tmp_path / "proj" / "w.safetensors"))
    text = """
name: paths
datasets:
  - {name: "imagefolder:../images/pets", root: data}
space:
  backbones: [{name: test_resnet, weights: [scratch, ../w.safetensors]}]
budget: {n_trials: 1}
storage: sqlite:///db/optuna.db
tracking_uri: mlruns
baselines: [{weights: ../w.safetensors}]
"""
    path = write_spec(text, folder="proj/studies")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_spec(path)
    folder = tmp_path / "proj" / "studies"
    ds = spec.datasets[0]
    assert ds.name == f"imagefolder:{tmp_path / 'proj' / 'images' / 'pets'}"
    assert ds.key == "pets" and ds.root == str(folder / "data")
    weights = str(tmp_path / "proj" / "w.safetensors")
    assert spec.space.backbones[0].weights == ["scratch", weights]
    assert spec.baselines == [{"weights": weights}]
    assert spec.storage_url == f"sqlite:///{folder / 'db' / 'optuna.db'}"
    assert spec.tracking_uri == (folder / "mlruns").as_uri()
    assert spec.source_path == path and spec.runs_dir == folder / "runs"


def test_default_stores_live_in_runs_beside_the_file(
    base: dict[str, Any], write_spec: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_spec(base, folder="a/b")
    monkeypatch.chdir(tmp_path)
    spec = load_spec(Path("a/b/study.yaml"))
    runs = tmp_path / "a" / "b" / "runs"
    assert spec.runs_dir == runs and spec.runs_dir.is_absolute()
    assert spec.storage_url == f"sqlite:///{runs / 'optuna.db'}" == spec.storage
    assert spec.tracking_uri == f"sqlite:///{runs / 'mlflow.db'}"
    assert urlparse(spec.artifact_location).scheme == "file"
    assert Path(urlparse(spec.artifact_location).path) == runs / "artifacts"
    assert spec.checkpoints_dir == runs / "checkpoints" and spec.cache_dir == runs / "cache"
    assert not runs.exists()  # reading a study writes nothing
    # the default URL is one Optuna opens as it is, from any working directory
    runs.mkdir()
    monkeypatch.chdir(tmp_path / "a")
    optuna.create_study(study_name="probe", storage=spec.storage_url)
    assert (runs / "optuna.db").is_file()
    assert path.exists()


def test_parse_spec_takes_a_mapping_and_a_notional_source(base: dict[str, Any], tmp_path: Path) -> None:
    spec = parse_spec(base, source=tmp_path / "virtual" / "s.yaml")
    assert spec.runs_dir == tmp_path / "virtual" / "runs"
    base["space"]["neck"] = ["nope"]
    with pytest.raises(SpecError, match=r"s\.yaml: space\.neck\[0\]: unknown neck 'nope'; accepted: .*gap"):
        parse_spec(base, source=tmp_path / "virtual" / "s.yaml")


def test_overrides_return_a_new_spec(
    base: dict[str, Any], write_spec: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base["datasets"] = ["digits", {"name": "shapes", "options": {"num_classes": 3}}]
    base["budget"] = {"n_trials": 4, "timeout_s": 600}
    spec = load_spec(write_spec(base))
    monkeypatch.chdir(tmp_path)
    changed = spec.with_overrides(
        storage="sqlite:///cli.db", tracking_uri="http://127.0.0.1:5000", n_trials=9, datasets=["shapes"]
    )
    assert changed.storage_url == f"sqlite:///{tmp_path / 'cli.db'}"
    assert changed.tracking_uri == "http://127.0.0.1:5000"
    assert (changed.budget.n_trials, changed.budget.timeout_s) == (9, 600)
    assert [d.key for d in changed.datasets] == ["shapes"]
    assert changed.source_path == spec.source_path and changed.space_digest() == spec.space_digest()
    # the original is untouched
    assert spec.budget.n_trials == 4 and [d.key for d in spec.datasets] == ["digits", "shapes"]
    assert spec.storage_url.endswith("runs/optuna.db")
    assert spec.with_overrides(timeout_s=5).budget.timeout_s == 5 and spec.with_overrides().budget == spec.budget


@pytest.mark.parametrize(
    ("overrides", "field", "accepted"),
    [
        ({"datasets": ["cifar"]}, "datasets", "digits"),
        ({"n_trials": 0}, "budget.n_trials", "a positive integer"),
        ({"timeout_s": -1}, "budget.timeout_s", "a positive number"),
        ({"storage": "optuna.db"}, "storage", "sqlite:///PATH"),
    ],
)
def test_bad_overrides_are_spec_errors(
    base: dict[str, Any], write_spec: Callable[..., Path], overrides: dict[str, Any], field: str, accepted: str
) -> None:
    path = write_spec(base)
    spec = load_spec(path)
    with pytest.raises(SpecError) as caught:
        spec.with_overrides(**overrides)
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}: ") and accepted in message.partition("; accepted: ")[2]


def test_digest_follows_the_search_space_only(base: dict[str, Any], write_spec: Callable[..., Path]) -> None:
    digest = load_spec(write_spec(base)).space_digest()
    assert len(digest) == 16 and digest == load_spec(write_spec(base, folder="copy")).space_digest()
    unchanged = dict(base, budget={"n_trials": 50}, description="other words", sampler={"name": "random"})
    assert load_spec(write_spec(unchanged)).space_digest() == digest
    for change in (
        lambda s: s["neck"].append("attn"),
        lambda s: s["head"].remove("mlp"),
        lambda s: s["backbones"][1]["weights"].append("pretrained"),
        lambda s: s.update(lr={"low": 1.0e-4, "high": 1.0e-1, "log": True}),
        lambda s: s.update(epochs=[1, 3]),
        lambda s: s.update(freeze_depth=[0, "all"]),
        lambda s: s.update(seed=[0, 1]),
    ):
        data = copy.deepcopy(base)
        change(data["space"])
        assert load_spec(write_spec(data)).space_digest() != digest


def test_base_config_builds_a_trialconfig(base: dict[str, Any], write_spec: Callable[..., Path]) -> None:
    spec = load_spec(write_spec(base))
    assert spec.study_name("digits") == "small/digits" == spec.study_name(spec.datasets[0])
    config = TrialConfig(**spec.base_config("digits"), backbone="test_resnet", lr=1e-3)
    assert (config.dataset, config.train_size, config.val_size, config.batch_size) == ("digits", 100, 50, 32)


def test_the_spec_package_does_not_import_optuna_or_mlflow() -> None:
    # Samplers and pruners are built in tl_bench.study.samplers; reading a study needs neither store.
    code = "import sys, tl_bench.spec; print('optuna' in sys.modules, 'mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_dumped_spec_validates_back_unchanged(base: dict[str, Any], write_spec: Callable[..., Path]) -> None:
    spec = load_spec(write_spec(base))
    again = parse_spec(spec.model_dump(mode="json"), source=spec.source_path)
    assert again == spec and again.space_digest() == spec.space_digest()


def test_class_token_necks_load_when_every_backbone_has_one(
    base: dict[str, Any], write_spec: Callable[..., Path]
) -> None:
    base["space"]["backbones"] = [{"name": "test_vit", "weights": ["scratch"]}]
    base["space"]["neck"] = ["cls", "timm", "gap"]
    base["baselines"] = [{"backbone": "test_vit", "neck": "cls", "freeze_depth": "all"}]
    assert load_spec(write_spec(base)).space.neck == ["cls", "timm", "gap"]
    # the timm neck reads any backbone: no class token needed
    base["space"]["backbones"].append({"name": "test_convnext", "weights": ["scratch"]})
    base["space"]["neck"] = ["timm"]
    base["baselines"] = []
    assert load_spec(write_spec(base)).space.neck == ["timm"]
