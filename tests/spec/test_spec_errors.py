"""The bad-input catalogue of study files: each case is one SpecError line naming the file,
the field path and what is accepted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import save_file

from tl_bench.errors import SpecError, TLBenchError
from tl_bench.spec import load_spec

Mutate = Callable[[dict[str, Any], Path], None]


def setting(*path: Any, value: Any) -> Mutate:
    def mutate(data: dict[str, Any], folder: Path) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def removing(*path: Any) -> Mutate:
    def mutate(data: dict[str, Any], folder: Path) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def renaming(*path: Any) -> Mutate:
    """Move the value at ``path[:-1]`` to the key ``path[-1]`` beside it (a misspelled key)."""

    def mutate(data: dict[str, Any], folder: Path) -> None:
        node = data
        for key in path[:-2]:
            node = node[key]
        node[path[-1]] = node.pop(path[-2])

    return mutate


def both(*mutations: Mutate) -> Mutate:
    def mutate(data: dict[str, Any], folder: Path) -> None:
        for m in mutations:
            m(data, folder)

    return mutate


def corrupt_safetensors(data: dict[str, Any], folder: Path) -> None:
    (folder / "broken.safetensors").write_bytes(b"\x00\x01 not a safetensors header" * 4)
    data["space"]["backbones"][0]["weights"] = ["broken.safetensors"]


class Payload:
    """Any object outside torch's allow-list: weights_only loading must refuse it."""

    def __init__(self) -> None:
        self.weight = torch.zeros(2)


def pickled_object(data: dict[str, Any], folder: Path) -> None:
    torch.save(Payload(), folder / "object.pth")
    data["space"]["backbones"][0]["weights"] = ["object.pth"]


def empty_state(data: dict[str, Any], folder: Path) -> None:
    save_file({}, str(folder / "empty.safetensors"))
    data["space"]["backbones"][0]["weights"] = ["empty.safetensors"]


# (id, mutation, field path, a fragment of what is wrong, a fragment of what is accepted)
CASES: list[tuple[str, Mutate, str, str, str]] = [
    ("unknown-top-field", setting("searchspace", value={}), "searchspace", "unknown field", "datasets, space"),
    ("unknown-nested-field", setting("datasets", 0, "img_sizes", value=32), "datasets[0].img_sizes", "unknown field", "img_size"),
    ("unknown-sampler-option", setting("sampler", "n_startup", value=3), "sampler.n_startup", "unknown field", "n_startup_trials"),
    ("wrong-type", setting("datasets", 0, "img_size", value="big"), "datasets[0].img_size", "'big'", "an integer > 0"),
    ("wrong-type-mapping", setting("space", value=["test_resnet"]), "space", "expected a mapping", "backbones, freeze_depth, adaptation, neck, head"),
    ("wrong-type-list", setting("datasets", value="digits"), "datasets", "valid list", "a non-empty list"),
    ("empty-neck-list", setting("space", "neck", value=[]), "space.neck", "empty", "non-empty list"),
    ("empty-backbones", setting("space", "backbones", value=[]), "space.backbones", "empty", "timm model name"),
    ("empty-weights", setting("space", "backbones", 1, "weights", value=[]), "space.backbones[1].weights", "empty", "non-empty"),
    ("empty-choices", setting("space", "epochs", value=[]), "space.epochs", "empty", "non-empty list"),
    ("missing-budget", removing("budget"), "budget", "missing", "n_trials, timeout_s"),
    ("budget-without-limit", setting("budget", value={"n_trials": None}), "budget", "no limit", "n_trials, timeout_s or both"),
    ("budget-zero", setting("budget", "n_trials", value=0), "budget.n_trials", "greater than 0", "an integer > 0"),
    ("bad-name", setting("name", value="my study!"), "name", "invalid name", "letters, digits"),
    ("unknown-backbone", setting("space", "backbones", 0, "name", value="resnet_nope"), "space.backbones[0].name", "resnet_nope", "timm model name"),
    ("missing-backbone-name", setting("space", "backbones", 0, value={"weights": ["scratch"]}), "space.backbones[0].name", "missing", "timm model name"),
    ("duplicate-backbone", setting("space", "backbones", 1, value="test_resnet"), "space.backbones", "listed twice", "each backbone once"),
    ("unknown-neck", setting("space", "neck", value=["gap", "gem_pool"]), "space.neck[1]", "gem_pool", "gap"),
    ("cls-neck-without-class-token", setting("space", "neck", value=["gap", "cls"]), "space.neck[1]", "backbone 'test_resnet' has none", "gap, gmp, avgmax"),
    ("unknown-head", setting("space", "head", value=["softmax"]), "space.head[0]", "softmax", "linear"),
    ("duplicate-head", setting("space", "head", value=["mlp", "mlp"]), "space.head", "listed twice", "each choice once"),
    ("unknown-dataset", setting("datasets", 0, "name", value="mnist"), "datasets[0].name", "mnist", "digits, shapes"),
    ("unknown-torchvision-set", setting("datasets", 0, "name", value="torchvision:CIFAR11"), "datasets[0].name", "CIFAR11", "CIFAR10"),
    ("unknown-dataset-option", setting("pretrain", "shapes", "dataset", "options", value={"num_clases": 4}), "pretrain.shapes.dataset.options", "num_clases", "num_classes"),
    ("unknown-pretrain-dataset", setting("pretrain", "shapes", "dataset", value="squares"), "pretrain.shapes.dataset.name", "squares", "shapes"),
    ("duplicate-dataset-key", setting("datasets", value=["digits", {"name": "digits", "img_size": 64}]), "datasets[1].key", "also the key", "set key:"),
    ("freeze-depth-beyond-every-backbone", setting("space", "freeze_depth", value=[0, 9]), "space.freeze_depth[1]", "exceeds the stage count", "integers 0..7 or 'all'"),
    ("freeze-depth-wrong-type", setting("space", "freeze_depth", value=[0, "half"]), "space.freeze_depth[1]", "'half'", "an integer >= 0 or 'all'"),
    ("freeze-depth-negative", setting("space", "freeze_depth", value=[-1]), "space.freeze_depth[0]", "-1", "an integer >= 0 or 'all'"),
    ("local-not-declared", setting("space", "backbones", 0, "weights", value=["local:imagenet"]), "space.backbones[0].weights[0]", "not declared under pretrain", "local:shapes"),
    ("local-none-declared", both(removing("pretrain"), setting("space", "backbones", 0, "weights", value=["local:shapes"])), "space.backbones[0].weights[0]", "not declared", "add it under pretrain"),
    ("weights-file-missing", setting("space", "backbones", 0, "weights", value=["ckpt/missing.safetensors"]), "space.backbones[0].weights[0]", "does not exist", ".safetensors/.pth/.pt"),
    ("weights-file-corrupt", corrupt_safetensors, "space.backbones[0].weights[0]", "cannot be read", ".safetensors/.pth/.pt"),
    ("weights-file-unsafe-pickle", pickled_object, "space.backbones[0].weights[0]", "cannot be read", ".safetensors/.pth/.pt"),
    ("weights-file-empty", empty_state, "space.backbones[0].weights[0]", "no tensors", ".safetensors/.pth/.pt"),
    ("weights-unknown-word", setting("space", "backbones", 0, "weights", value=["imagenet"]), "space.backbones[0].weights[0]", "unknown weights 'imagenet'", "scratch, pretrained, timm:TAG"),
    ("weights-unknown-timm-tag", setting("space", "backbones", 0, "weights", value=["timm:in22k"]), "space.backbones[0].weights[0]", "in22k", "r160_in1k"),
    ("unknown-sampler", setting("sampler", value={"name": "cmaes"}), "sampler.name", "cmaes", "'tpe', 'random', 'grid', 'nsga2', 'gp', 'qmc'"),
    ("sampler-without-name", setting("sampler", value={"seed": 1}), "sampler", "'name' is missing", "tpe, random, grid"),
    ("unknown-pruner", setting("pruner", value="patient"), "pruner.name", "patient", "'none', 'median', 'successive_halving', 'hyperband'"),
    ("grid-with-range", setting("sampler", value={"name": "grid"}), "space.lr", "grid sampler needs a list", "a list of values"),
    ("nsga2-single-objective", setting("sampler", value={"name": "nsga2"}), "sampler.name", "needs objective.cost", "train_time_s"),
    ("prune-multi-objective", setting("objective", value={"cost": "train_time_s"}), "pruner.name", "pruners are single-objective", "mo_asha"),
    ("unknown-cost", setting("objective", value={"cost": "dollars"}), "objective.cost", "'dollars'", "'train_time_s', 'flops_train', 'params_trainable', 'adapter_mb', 'latency_ms' or 'infer_ips'"),
    ("unknown-metric", setting("objective", value={"metric": "test_acc"}), "objective.metric", "'test_acc'", "'val_acc'"),
    ("pruner-resource-beyond-epochs", setting("pruner", value={"name": "hyperband", "min_resource": 5}), "pruner.min_resource", "exceeds", "1..2"),
    ("range-reversed", setting("space", "lr", value={"low": 0.1, "high": 0.01}), "space.lr", "must be below high", "low < high"),
    ("range-log-at-zero", setting("space", "lr", value={"low": 0.0, "high": 0.1, "log": True}), "space.lr", "log scale needs low > 0", "positive low"),
    ("range-not-a-range", setting("space", "lr", value="fast"), "space.lr", "not a search range", "a list of choices"),
    ("range-unknown-key", setting("space", "lr", value={"low": 0.001, "high": 0.1, "scale": "log"}), "space.lr.scale", "unknown field", "low, high, log, step"),
    ("int-field-float-range", setting("space", "epochs", value={"low": 1, "high": 2.5}), "space.epochs.high", "2.5", "an integer >= 1"),
    ("choice-wrong-type", setting("space", "epochs", value=[1, "many"]), "space.epochs[1]", "'many'", "an integer >= 1"),
    ("choice-bool-for-int", setting("space", "epochs", value=[1, True]), "space.epochs[1]", "True", "an integer"),
    ("range-on-text-field", setting("space", "optimizer", value={"low": 1, "high": 2}), "space.optimizer", "not numeric", "a list of choices"),
    ("unsearchable-field", setting("space", "img_size", value=[32, 64]), "space.img_size", "set per dataset", "backbones, freeze_depth"),
    ("unknown-search-field", setting("space", "dropout", value=[0.1]), "space.dropout", "cannot be searched", "label_smoothing"),
    ("fixed-unknown", setting("fixed", "dropout", value=0.1), "fixed.dropout", "cannot be fixed", "weight_decay"),
    ("fixed-also-searched", setting("fixed", "lr", value=0.1), "fixed.lr", "also searched", "either searched or fixed"),
    ("fixed-wrong-literal", setting("fixed", "optimizer", value="adamx"), "fixed.optimizer", "'adamx'", "'adamw', 'adam', 'nadamw'"),
    ("fixed-negative-lr", both(removing("space", "lr"), setting("fixed", "lr", value=-0.1)), "fixed.lr", "-0.1", "a number > 0"),
    ("baseline-not-searched", setting("baselines", 0, "batch_size", value=64), "baselines[0].batch_size", "not searched", "backbone, weights"),
    ("baseline-outside-choices", setting("baselines", 0, "epochs", value=7), "baselines[0].epochs", "outside space.epochs", "1, 2"),
    ("baseline-outside-range", setting("baselines", 0, "lr", value=0.5), "baselines[0].lr", "outside space.lr", "0.0001..0.01"),
    ("baseline-unknown-backbone", setting("baselines", 0, "backbone", value="resnet50"), "baselines[0].backbone", "not in space.backbones", "test_resnet, test_vit"),
    ("baseline-weights-not-listed", setting("baselines", 0, value={"backbone": "test_vit", "weights": "local:shapes"}), "baselines[0].weights", "not listed", "scratch"),
    ("baseline-depth-beyond-backbone", both(setting("space", "freeze_depth", value=[0, 6, "all"]), setting("baselines", 0, "freeze_depth", value=6)), "baselines[0].freeze_depth", "exceeds the 5 stages of test_resnet", "0..5 or 'all'"),
    ("storage-not-url", setting("storage", value="optuna.db"), "storage", "not a database URL", "sqlite:///PATH"),
    # a registry's advice stays in its sentence; the field's own accepted values follow
    ("dataset-option-out-of-range", setting("pretrain", "shapes", "dataset", "options", value={"num_classes": 1}), "pretrain.shapes.dataset.options", "is not accepted; use an integer from 2 to 10", "num_classes, n_per_class"),
    ("dataset-name-with-extra", setting("datasets", 0, "name", value="digits:extra"), "datasets[0].name", "takes no ':' part; write digits", "digits, shapes"),
    # a misspelled field or value names the closest accepted one
    ("misspelled-top-field", renaming("budget", "budgett"), "budgett", "unknown field 'budgett' (did you mean 'budget'?)", "budget"),
    ("misspelled-space-field", renaming("space", "freeze_depth", "freez_depth"), "space.freez_depth", "'freez_depth' cannot be searched (did you mean 'freeze_depth'?)", "freeze_depth"),
    ("misspelled-dataset-field", setting("datasets", 0, "img_sizes", value=32), "datasets[0].img_sizes", "(did you mean 'img_size'?)", "img_size"),
    ("misspelled-fixed-field", setting("fixed", "batchsize", value=8), "fixed.batchsize", "(did you mean 'batch_size'?)", "batch_size"),
    ("misspelled-baseline-field", renaming("baselines", 0, "freeze_depth", "freez_depth"), "baselines[0].freez_depth", "(did you mean 'freeze_depth'?)", "freeze_depth"),
    ("misspelled-fixed-literal", setting("fixed", "optimizer", value="lamm"), "fixed.optimizer", "'lamm' is not accepted (did you mean 'lamb'?)", "'lamb', 'lambw'"),
    ("misspelled-sampler", setting("sampler", value={"name": "tpee"}), "sampler.name", "unknown value 'tpee' (did you mean 'tpe'?)", "'tpe'"),
    ("misspelled-cost", setting("objective", value={"cost": "train_time"}), "objective.cost", "(did you mean 'train_time_s'?)", "'train_time_s'"),
    ("misspelled-neck", setting("space", "neck", value=["gap", "gemm"]), "space.neck[1]", "unknown neck 'gemm' (did you mean 'gem'?)", "gap"),
    ("misspelled-weights", setting("space", "backbones", 0, "weights", value=["scrach"]), "space.backbones[0].weights[0]", "(did you mean 'scratch'?)", "scratch"),
    ("misspelled-local", setting("space", "backbones", 0, "weights", value=["local:shape"]), "space.backbones[0].weights[0]", "(did you mean 'local:shapes'?)", "local:shapes"),
    ("misspelled-dataset", setting("datasets", 0, "name", value="digit"), "datasets[0].name", "unknown dataset 'digit' (did you mean 'digits'?)", "digits, shapes"),
]


@pytest.mark.parametrize(("mutate", "field", "what", "accepted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_file_field_and_accepted(
    base: dict[str, Any], write_spec: Callable[..., Path], tmp_path: Path,
    mutate: Mutate, field: str, what: str, accepted: str,
) -> None:
    mutate(base, tmp_path)
    path = write_spec(base)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: "), message
    wrong, sep, accepts = message[len(f"{path}: {field}: "):].partition("; accepted: ")
    assert sep, message
    assert what in wrong, message
    assert accepted in accepts, message
    assert isinstance(caught.value, TLBenchError) and caught.value.exit_code == 2
    error = caught.value  # the parts of the line, as fields
    assert (error.source, error.field, error.what, error.accepted) == (str(path), field, wrong, accepts)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("name: x\ndatasets: [digits\nspace: {}\n", r"line 3, column \d+", "YAML syntax error"),
        ("name: x\nspace:\n\tbackbones: [test_resnet]\n", r"line 3, column 1", "YAML syntax error"),
        ("name: x\nname: y\n", r"line 2, column 1", "key 'name' appears twice"),
        ("", "top level", "the study is empty"),
        ("- digits\n- shapes\n", "top level", "expected a mapping, got list"),
        ("just a string\n", "top level", "expected a mapping, got str"),
    ],
    ids=["syntax", "tab-indent", "duplicate-key", "empty-file", "top-level-list", "top-level-scalar"],
)
def test_unreadable_yaml_is_one_line(write_spec: Callable[..., Path], text: str, where: str, what: str) -> None:
    path = write_spec(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "\n" not in message
    assert re.match(rf"^{re.escape(str(path))}: {where}: .*{re.escape(what)}.*; accepted: .+$", message), message


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match=rf"^{re.escape(str(path))}: top level: file not found; accepted: "):
        load_spec(path)


def test_yaml_tags_are_not_executed(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError, match="YAML"):
        load_spec(write_spec(text))
    assert not marker.exists()


def test_errors_name_the_path_as_given(base: dict[str, Any], write_spec: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base["space"]["neck"] = ["nope"]
    write_spec(base, folder="studies")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"^studies/study\.yaml: space\.neck\[0\]: "):
        load_spec("studies/study.yaml")


def test_a_misspelled_dataset_to_run_names_the_closest_key(base: dict[str, Any], write_spec: Callable[..., Path]) -> None:
    spec = load_spec(write_spec(base))
    with pytest.raises(SpecError, match=r": datasets: no dataset 'digit' \(did you mean 'digits'\?\); accepted: digits$"):
        spec.with_overrides(datasets=["digit"])
