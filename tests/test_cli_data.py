"""``tl-bench list datasets`` and ``tl-bench inspect-data``, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tl_bench.data import DATASETS, clear_cache, load_dataset


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tl_bench", *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow  # a fresh interpreter imports torch, torchvision and scikit-learn
def test_inspect_data_json_matches_the_library_fingerprint() -> None:
    proc = _run(
        "inspect-data", "shapes", "--img-size", "16", "--train-size", "12", "--val-size", "6", "--seed", "4",
        "--option", "num_classes=3", "--option", "n_per_class=10", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in ("num_classes", "class_names", "train", "val", "test", "fingerprint", "skipped"):
        assert key in info, key
    assert (info["train"], info["val"], info["test"]) == (12, 6, 9)
    assert info["num_classes"] == 3 and info["class_names"] == ["circle", "square", "triangle"]
    assert info["class_counts"]["train"] == [4, 4, 4] and info["skipped"] == []
    # another process computes the same fingerprint: it does not depend on the run
    clear_cache()
    here = load_dataset("shapes", img_size=16, train_size=12, val_size=6, seed=4, num_classes=3, n_per_class=10)
    assert info["fingerprint"] == here.fingerprint


@pytest.mark.slow
def test_inspect_data_missing_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    proc = _run("inspect-data", f"imagefolder:{missing}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "does not exist" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_list_datasets_json_names_every_entry() -> None:
    from typer.testing import CliRunner

    from tl_bench.cli import app

    result = CliRunner().invoke(app, ["list", "datasets", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["datasets"]
    assert [row["name"] for row in rows] == [info.form for info in DATASETS.values()]
    assert next(r for r in rows if r["name"] == "shapes")["options"]["n_per_class"] == 300
