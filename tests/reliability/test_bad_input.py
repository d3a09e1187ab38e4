"""The bad-input catalogue of docs/reliability.md: each mistake, through the real CLI, ends with
exit code 2, one line on stderr saying what was wrong and what is accepted, and both stores unchanged.

The cases run two at a time (one per core) in a session fixture; each test checks one case.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from limits_stores_ui_cases import LIMITS_STORES_UI_CASES, closed_port
from reliability_support import Case, spec_data, store_snapshot, tlb, write_spec

pytestmark = pytest.mark.slow


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _space(**changes: Any) -> dict[str, Any]:
    return {**spec_data()["space"], **changes}


def _imagefolder(folder: Path, sub: str) -> dict[str, Any]:
    return spec_data(datasets=[{"name": f"imagefolder:{sub}", "img_size": 16}])


def yaml_syntax(folder: Path) -> list[str]:
    (folder / "study.yaml").write_text("name: rel\ndatasets: [\n  {name: digits\n")
    return ["run", "study.yaml"]


def unknown_field(folder: Path) -> list[str]:
    write_spec(folder, spec_data(colour="red"))
    return ["run", "study.yaml"]


def wrong_type(folder: Path) -> list[str]:
    write_spec(folder, spec_data(budget={"n_trials": "many"}))
    return ["run", "study.yaml"]


def empty_space(folder: Path) -> list[str]:
    write_spec(folder, spec_data(space=_space(backbones=[])))
    return ["run", "study.yaml"]


def unknown_backbone(folder: Path) -> list[str]:
    write_spec(folder, spec_data(space=_space(backbones=["resnet_nope"])))
    return ["run", "study.yaml"]


def unknown_neck(folder: Path) -> list[str]:
    write_spec(folder, spec_data(space=_space(neck=["gap", "gapp"])))
    return ["run", "study.yaml"]


def unknown_head(folder: Path) -> list[str]:
    write_spec(folder, spec_data(space=_space(head=["linaer"])))
    return ["run", "study.yaml"]


def unknown_dataset(folder: Path) -> list[str]:
    write_spec(folder, spec_data(datasets=[{"name": "digitz", "img_size": 16}]))
    return ["run", "study.yaml"]


def freeze_depth_beyond(folder: Path) -> list[str]:
    write_spec(folder, spec_data(space=_space(freeze_depth=[0, 9])))
    return ["run", "study.yaml"]


def freeze_depth_wrong_type(folder: Path) -> list[str]:
    write_spec(folder, spec_data(space=_space(freeze_depth=[0, "half"])))
    return ["run", "study.yaml"]


def weights_missing(folder: Path) -> list[str]:
    write_spec(folder, spec_data(space=_space(backbones=[{"name": "test_resnet", "weights": ["missing.safetensors"]}])))
    return ["run", "study.yaml"]


def weights_corrupt(folder: Path) -> list[str]:
    (folder / "corrupt.pth").write_bytes(b"\x80\x02this is not a checkpoint" * 10)
    write_spec(folder, spec_data(space=_space(backbones=[{"name": "test_resnet", "weights": ["corrupt.pth"]}])))
    return ["run", "study.yaml"]


def dataset_empty(folder: Path) -> list[str]:
    (folder / "images").mkdir()
    write_spec(folder, _imagefolder(folder, "images"))
    return ["run", "study.yaml"]


def dataset_one_class(folder: Path) -> list[str]:
    for i in range(4):
        _png(folder / "images" / "cat" / f"{i}.png", i)
    write_spec(folder, _imagefolder(folder, "images"))
    return ["run", "study.yaml"]


def corrupt_images(folder: Path) -> list[str]:
    # Unreadable files are skipped and counted; a class left with none cannot be trained on.
    for i in range(4):
        _png(folder / "images" / "cat" / f"{i}.png", i)
        (folder / "images" / "dog" / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / "dog" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated" * 3)
    write_spec(folder, _imagefolder(folder, "images"))
    return ["run", "study.yaml"]


def storage_unreachable(folder: Path) -> list[str]:
    write_spec(folder)
    return ["run", "study.yaml", "--storage", f"postgresql://postgres@127.0.0.1:{closed_port()}/tlb"]


def tracking_unreachable(folder: Path) -> list[str]:
    write_spec(folder)
    return ["run", "study.yaml", "--tracking-uri", f"http://127.0.0.1:{closed_port()}"]


def study_name_clash(folder: Path) -> list[str]:
    # The study already exists in the storage, made from another search space.
    from tl_bench.spec import load_spec
    from tl_bench.study.storage import make_storage, open_study

    first = load_spec(write_spec(folder, name="first.yaml"))
    open_study(make_storage(first.storage_url), first.study_name("digits"), directions=["maximize"], metric_names=["val_acc"],
               sampler=__import__("optuna").samplers.RandomSampler(), pruner=__import__("optuna").pruners.NopPruner(),
               space_digest=first.space_digest(), source=str(first.source_path))
    write_spec(folder, spec_data(space=_space(neck=["attn"])))
    return ["run", "study.yaml"]


def spec_missing(folder: Path) -> list[str]:
    return ["run", "nothere.yaml"]


def csv_not_writable(folder: Path) -> list[str]:
    return ["leaderboard", "--tracking-uri", f"sqlite:///{folder / 'runs' / 'mlflow.db'}", "--csv", "/nonexistent/dir/x.csv"]


CASES: dict[str, Case] = {
    "yaml_syntax": Case(yaml_syntax, r"study\.yaml: line \d+, column \d+: YAML syntax error", r"accepted: valid YAML"),
    "unknown_field": Case(unknown_field, r"colour", r"accepted: .*datasets"),
    "wrong_type": Case(wrong_type, r"budget\.n_trials", r"accepted: .*integer"),
    "empty_search_space": Case(empty_space, r"space\.backbones", r"accepted: "),
    "unknown_backbone": Case(unknown_backbone, r"space\.backbones\[0\]\.name.*resnet_nope", r"accepted: "),
    "unknown_neck": Case(unknown_neck, r"space\.neck\[1\].*gapp", r"accepted: .*gap"),
    "unknown_head": Case(unknown_head, r"space\.head\[0\].*linaer", r"accepted: .*linear"),
    "unknown_dataset": Case(unknown_dataset, r"datasets\[0\]\.name.*digitz", r"accepted: .*digits"),
    "freeze_depth_beyond_backbone": Case(freeze_depth_beyond, r"space\.freeze_depth\[1\].*9", r"accepted: integers 0\.\.\d+ or 'all'"),
    "freeze_depth_wrong_type": Case(freeze_depth_wrong_type, r"space\.freeze_depth\[1\].*half", r"accepted: "),
    "weights_file_missing": Case(weights_missing, r"weights\[0\].*missing\.safetensors.*does not exist", r"accepted: "),
    "weights_file_corrupt": Case(weights_corrupt, r"weights\[0\].*corrupt\.pth.*cannot be read", r"accepted: "),
    "dataset_folder_empty": Case(dataset_empty, r"images is empty", r"expected one sub-folder per class"),
    "dataset_one_class": Case(dataset_one_class, r"single class folder 'cat'", r"at least 2"),
    "corrupt_images": Case(corrupt_images, r"class 'dog' has no readable images.*4 files skipped", r"every class folder needs at least one image"),
    "storage_unreachable": Case(storage_unreachable, r"Optuna storage 'postgresql://postgres@127\.0\.0\.1:\d+/tlb' cannot be opened", r"accepted: |connection refused|Connection refused"),
    "tracking_unreachable": Case(tracking_unreachable, r"tracking server 'http://127\.0\.0\.1:\d+' does not answer", r"accepted: the URL of a running"),
    "study_name_clash": Case(study_name_clash, r"study 'rel/digits' already exists .* different search space", r"accepted: a new spec name"),
    "spec_file_missing": Case(spec_missing, r"nothere\.yaml: top level: file not found", r"accepted: the path of a study"),
    "csv_not_writable": Case(csv_not_writable, r"cannot write the leaderboard to /nonexistent/dir/x\.csv", r"accepted: a file path in an existing, writable folder"),
    **LIMITS_STORES_UI_CASES,  # study-file bounds, command-line options, tracking stores, the UI and dashboards
}


@dataclass
class Outcome:
    code: int
    stderr: str
    seconds: float
    before: dict[str, Any]
    after: dict[str, Any]


def _run_case(name: str, root: Path, template: Path) -> Outcome:
    import time

    folder = root / name
    (folder / "runs").mkdir(parents=True)
    shutil.copyfile(template, folder / "runs" / "mlflow.db")  # the spec's default MLflow store, already migrated
    args = CASES[name].setup(folder)
    before = store_snapshot(folder)
    start = time.monotonic()
    done = tlb(args, cwd=folder, timeout=120)
    return Outcome(done.returncode, done.stderr, time.monotonic() - start, before, store_snapshot(folder))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("bad-input")
    with ThreadPoolExecutor(max_workers=2) as pool:  # one subprocess per core
        futures = {name: pool.submit(_run_case, name, root, mlflow_template) for name in CASES}
        return {name: future.result() for name, future in futures.items()}


def test_the_catalogue_has_at_least_15_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_with_one_line_and_stores_unchanged(name: str, outcomes: dict[str, Outcome]) -> None:
    case, outcome = CASES[name], outcomes[name]
    lines = outcome.stderr.strip().splitlines()
    assert outcome.code == 2, outcome.stderr[-3000:]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{outcome.stderr[-3000:]}"
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in line
    assert re.search(case.wrong, line), line
    assert re.search(case.accepted, line), line
    assert outcome.after == outcome.before  # no study, trial, experiment, run or artifact appeared
    assert outcome.seconds < 60  # an unreachable store fails fast instead of retrying for minutes
