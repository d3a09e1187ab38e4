"""A stored study goes on only with a study file that measures the same thing.

A first ``tl-bench run`` records the study; another file with the same ``name`` (or the same file,
edited) that changes one field of the study's identity is refused with one line naming the field and
exit 2, and nothing is recorded; ``--continue-changed`` goes on and records the change in Optuna and
on the parent run. A store of an earlier version (only the space's digest recorded) takes the identity
on first use. A copied study folder is refused before it writes into the original's artifacts.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
import pytest
import yaml
from PIL import Image

from reliability_support import STUDY, parent_runs, spec_data, store_snapshot, tlb, write_spec
from tl_bench.cli import main
from tl_bench.study.storage import IDENTITY, IDENTITY_CHANGES
from tl_bench.tracking import IDENTITY_CHANGED

pytestmark = pytest.mark.slow

PRETRAIN = {"shapes": {"dataset": {"name": "shapes", "img_size": 16, "val_size": 12,
                                   "options": {"num_classes": 3, "n_per_class": 12}},
                       "epochs": 1, "batch_size": 32}}


def _base() -> dict[str, Any]:
    """One 1-epoch trial on digits at 16 px; the space names local pretraining (pretrained once, tiny)."""
    data = spec_data(budget={"n_trials": 1}, pretrain=copy.deepcopy(PRETRAIN))
    data["space"]["backbones"] = [{"name": "test_resnet", "weights": ["scratch", "local:shapes"]}]
    return data


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(["run", *args, "--quiet"])
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def _study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name=f"{STUDY}/digits", storage=f"sqlite:///{folder / 'runs' / 'optuna.db'}")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose study ran one trial from ``study.yaml``."""
    folder = tmp_path_factory.mktemp("identity")
    write_spec(folder, _base())
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        try:
            main(["run", "study.yaml", "--quiet"])
        except SystemExit as stop:
            assert not stop.code, stop.code
    return folder


def _dataset(data: dict[str, Any], **changes: Any) -> None:
    data["datasets"][0].update(changes)


CHANGES: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    # case: (the edit, the field the line names, the section words)
    "train_size": (lambda d: _dataset(d, train_size=150), "dataset.train_size", "dataset"),
    "img_size": (lambda d: _dataset(d, img_size=24), "dataset.img_size", "dataset"),
    "split_seed": (lambda d: _dataset(d, split_seed=1), "dataset.split_seed", "dataset"),
    "fixed": (lambda d: d["fixed"].update(epochs=2), "fixed.epochs", "fixed values"),
    "fixed_added": (lambda d: d["fixed"].update(label_smoothing=0.1), "fixed.label_smoothing", "fixed values"),
    "space": (lambda d: d["space"].update(neck=["gap", "attn"]), "space.neck", "search space"),
    "pretrain": (lambda d: d["pretrain"]["shapes"].update(epochs=2), "pretrain.shapes.epochs", "pretraining"),
    "pretrain_data": (lambda d: d["pretrain"]["shapes"]["dataset"]["options"].update(num_classes=4),
                      "pretrain.shapes.dataset.options.num_classes", "pretraining"),
    "constraints": (lambda d: d.update(constraints={"params_total": "<= 1e9"}), "constraints.params_total",
                    "constraints"),
    "latency": (lambda d: d.update(latency={"batch_sizes": [1]}), "latency.latency_batch_sizes",
                "latency measurement"),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_another_file_of_the_same_name_that_measures_otherwise_is_refused(
    case: str, recorded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit, field, words = CHANGES[case]
    data = _base()
    edit(data)
    write_spec(recorded, data, name=f"{case}.yaml")
    before = store_snapshot(recorded)
    monkeypatch.chdir(recorded)
    code, err = _run([f"{case}.yaml"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {recorded / f'{case}.yaml'}: {field}: study 'rel/digits' already exists in "
                               f"this storage with a different {words}: {field} "), lines[0]
    assert "accepted: a new spec name" in lines[0] and "tl-bench run --continue-changed" in lines[0]
    assert store_snapshot(recorded) == before


def test_what_changes_no_measurement_continues(recorded: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The budget, sampler, description and cache settings are not what a trial measures.
    data = _base()
    data.update(budget={"n_trials": 1}, sampler={"name": "random", "seed": 5}, description="other words")
    data["fixed"]["use_cache"] = False
    data["fixed"]["weight_decay"] = 1.0e-4  # TrialConfig's default, now written out
    write_spec(recorded, data, name="same.yaml")
    monkeypatch.chdir(recorded)
    assert _run(["same.yaml"], capsys)[0] == 0
    assert IDENTITY_CHANGES not in _study(recorded).user_attrs


def test_continue_changed_goes_on_and_records_the_change(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = spec_data(budget={"n_trials": 1})
    write_spec(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    assert _run(["study.yaml"], capsys)[0] == 0
    _dataset(data, train_size=150)
    write_spec(tmp_path, data)
    assert _run(["study.yaml", "--n-trials", "2"], capsys)[0] == 2
    code, err = _run(["study.yaml", "--n-trials", "2", "--continue-changed"], capsys)
    assert code == 0, err
    study = _study(tmp_path)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2
    (entry,) = study.user_attrs[IDENTITY_CHANGES]
    assert entry["changes"] == ["dataset.train_size 200 -> 150"] and entry["at"].endswith("+00:00")
    assert study.user_attrs[IDENTITY]["dataset"]["train_size"] == 150
    (parent,) = parent_runs(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    assert parent.data.tags[IDENTITY_CHANGED] == f"{entry['at']}: dataset.train_size 200 -> 150"
    # the change is now the study's: the same file goes on without the option, and nothing more is noted
    assert _run(["study.yaml", "--n-trials", "3"], capsys)[0] == 0
    assert len(_study(tmp_path).user_attrs[IDENTITY_CHANGES]) == 1


def _forget_identity(folder: Path) -> None:
    """Make the store look written by an earlier version: only the space's digest recorded."""
    with sqlite3.connect(folder / "runs" / "optuna.db") as db:
        db.execute("delete from study_user_attributes where key = ?", (IDENTITY,))


def test_a_store_that_recorded_only_the_space_takes_the_identity_on_first_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = spec_data(budget={"n_trials": 1})
    write_spec(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    assert _run(["study.yaml"], capsys)[0] == 0
    _forget_identity(tmp_path)
    assert IDENTITY not in _study(tmp_path).user_attrs
    assert _run(["study.yaml"], capsys)[0] == 0  # the budget is met: the study is opened, no trial runs
    attrs = _study(tmp_path).user_attrs
    assert attrs[IDENTITY]["dataset"]["train_size"] == 200 and IDENTITY_CHANGES not in attrs
    # what it recorded is compared from now on
    _dataset(data, train_size=150)
    write_spec(tmp_path, data)
    code, err = _run(["study.yaml", "--n-trials", "3"], capsys)
    assert code == 2 and ": dataset.train_size: " in err
    # and an earlier store whose space differs is refused on the space alone
    _forget_identity(tmp_path)
    data["space"]["neck"] = ["gap"]
    write_spec(tmp_path, data)
    code, err = _run(["study.yaml", "--n-trials", "3"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and ": space: study 'rel/digits' already exists" in err


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)


def test_a_class_added_to_the_image_folder_is_a_change_of_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for c, label in enumerate(("cat", "dog")):
        for i in range(10):
            _png(tmp_path / "images" / label / f"{i}.png", 10 * c + i)
    write_spec(tmp_path, spec_data(datasets=[{"name": "imagefolder:images", "img_size": 16}], budget={"n_trials": 1},
                                   fixed={"epochs": 1, "batch_size": 8}))
    monkeypatch.chdir(tmp_path)
    assert _run(["study.yaml"], capsys)[0] == 0
    for i in range(10):
        _png(tmp_path / "images" / "owl" / f"{i}.png", 100 + i)
    # a new process: this one keeps the folder it loaded
    done = tlb(["run", "study.yaml", "--n-trials", "2", "--quiet"], cwd=tmp_path)
    code, err = done.returncode, done.stderr
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert ": dataset.content: study 'rel/images' already exists in this storage with a different dataset" in err


def test_a_copied_study_folder_does_not_write_into_the_original(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tmp_path / "original"
    write_spec(original, spec_data(budget={"n_trials": 1}))
    monkeypatch.chdir(original)
    assert _run(["study.yaml"], capsys)[0] == 0
    copy_ = tmp_path / "copy"
    shutil.copytree(original, copy_)
    before, copied = store_snapshot(original), store_snapshot(copy_)
    monkeypatch.chdir(copy_)
    code, err = _run(["study.yaml", "--n-trials", "2"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert f"keeps the artifacts of experiment 'rel' in {original / 'runs' / 'artifacts'}, outside its folder " \
           f"{copy_ / 'runs'}: the study folder was copied or moved" in lines[0]
    assert "accepted: run the study in its original folder, or give the copy a new spec name" in lines[0]
    assert store_snapshot(original) == before and store_snapshot(copy_) == copied
    # the original folder opens as before
    monkeypatch.chdir(original)
    assert _run(["study.yaml"], capsys)[0] == 0


def test_a_store_named_elsewhere_with_the_spec_s_artifacts_is_not_a_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # --tracking-uri in another folder: the experiment keeps its artifacts beside the study file, as asked.
    write_spec(tmp_path / "study", spec_data(budget={"n_trials": 1}))
    uri = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path / "study")
    assert _run(["study.yaml", "--tracking-uri", uri], capsys)[0] == 0
    assert _run(["study.yaml", "--tracking-uri", uri], capsys)[0] == 0  # opened again: no trial left to run


def test_a_linked_study_file_resolves_from_the_file_it_links_to(tmp_path: Path) -> None:
    from tl_bench.spec import load_spec

    real = tmp_path / "project" / "study.yaml"
    write_spec(real.parent, spec_data(datasets=[{"name": "imagefolder:images", "img_size": 16}]))
    for c, label in enumerate(("cat", "dog")):
        _png(real.parent / "images" / label / "0.png", c)
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "linked.yaml"
    link.symlink_to(real)
    spec = load_spec(link)
    assert spec.source_path == real and spec.runs_dir == real.parent / "runs"
    assert spec.storage_url == f"sqlite:///{real.parent / 'runs' / 'optuna.db'}"
    assert spec.tracking_uri == f"sqlite:///{real.parent / 'runs' / 'mlflow.db'}"
    assert spec.datasets[0].name == f"imagefolder:{real.parent / 'images'}"
    assert spec.identity(spec.datasets[0]) == load_spec(real).identity(load_spec(real).datasets[0])


def test_the_identity_compares_what_a_store_gives_back() -> None:
    # what an Optuna user attribute returns (JSON) compares equal to what is computed now
    import json

    from tl_bench.spec import parse_spec
    from tl_bench.spec.identity import identity_changes

    spec = parse_spec(_base(), source=Path("/tmp/x/study.yaml"))
    identity = spec.identity("digits", "f00")
    assert identity_changes(json.loads(json.dumps(identity)), identity) == []
    assert identity_changes({"space": identity["space"]}, identity) == []  # sections not recorded: not compared
