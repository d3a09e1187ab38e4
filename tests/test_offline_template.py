"""Hub weights without the hub: the study template run offline ends at once with one line, before any trial.

No test here reaches the network: the hub endpoint is a local port that refuses or never answers
(``HF_ENDPOINT``), or huggingface_hub's own offline mode (``HF_HUB_OFFLINE``), and the Hugging Face
cache is an empty or hand-filled folder.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
from huggingface_hub import constants
from PIL import Image
from safetensors.torch import save_file

from tl_bench.errors import WeightsError
from tl_bench.models.hub import TIMEOUT_ENV, check_hub, in_cache, unreachable

TEMPLATE = Path(__file__).resolve().parents[1] / "studies" / "imagefolder_template.yaml"


def _free_port() -> int:
    """A local port nothing listens on: a connection there is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty Hugging Face cache and a hub endpoint that refuses, in this process (restored after)."""
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_the_unchanged_template_run_offline_exits_2_with_one_line_and_starts_no_trial(tmp_path: Path) -> None:
    shutil.copyfile(TEMPLATE, tmp_path / TEMPLATE.name)  # the template as shipped, beside its data
    for label in ("cat", "dog"):
        folder = tmp_path / "data" / "my_images" / label
        folder.mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 0, 0) if label == "cat" else (0, 0, 40 * i)).save(folder / f"{i}.png")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", TIMEOUT_ENV: "2"}
    done = subprocess.run([sys.executable, "-m", "tl_bench", "run", TEMPLATE.name, "--n-trials", "1"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]  # no retry warnings, no trial errors: one line
    line = lines[0]
    assert line.startswith("error: weights resnet18 pretrained (resnet18."), line
    assert "convnext_tiny pretrained (convnext_tiny." in line and "cannot be reached" in line
    assert all(word in line for word in ("'scratch'", "checkpoint file", "'local:NAME'")), line
    assert not (tmp_path / "runs").exists()  # no store was made: no study, no trial


def test_hub_offline_mode_counts_as_unreachable(no_hub: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsError, match=r"weights test_resnet timm:r160_in1k \(test_resnet.r160_in1k\) come from "
                                           r"the Hugging Face hub, which cannot be reached \(HF_HUB_OFFLINE is set\)"):
        check_hub([("test_resnet", "timm:r160_in1k"), ("test_resnet", "scratch")])


def test_no_hub_weights_ask_nothing(no_hub: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    check_hub([("test_resnet", "scratch"), ("test_vit", "/tmp/w.safetensors"), ("test_vit", "local:shapes")])


def test_a_hub_that_never_answers_is_given_up_within_the_time_limit(no_hub: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv(TIMEOUT_ENV, "0.5")
        start = time.monotonic()
        why = unreachable()
        assert time.monotonic() - start < 3
    assert why is not None and why.startswith("http://127.0.0.1:")


def test_cached_weights_are_read_offline_without_waiting_on_the_hub(no_hub: None, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # The cache as huggingface_hub lays it out: refs/main names the snapshot holding the file.
    repo = tmp_path / "hf" / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    state = timm.create_model("test_resnet").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
    assert in_cache("test_resnet.r160_in1k")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test: check_hub turns offline mode on
    check_hub([("test_resnet", "pretrained")])
    assert constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1"
    start = time.monotonic()
    model = timm.create_model("test_resnet", pretrained=True)  # from the cache, no request, no retry
    assert time.monotonic() - start < 10
    assert all((model.state_dict()[k] == v).all() for k, v in state.items())


def test_hub_warnings_print_once() -> None:
    import tl_bench.models.weights  # noqa: F401  (sets the hub's logging up)

    root = logging.getLogger()
    seen = io.StringIO()
    added = logging.StreamHandler(seen)  # what MLflow's basicConfig leaves on the root logger
    root.addHandler(added)
    try:
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
    finally:
        root.removeHandler(added)
    assert seen.getvalue() == ""  # not a second time through the root logger
    assert logging.getLogger("huggingface_hub").handlers  # its own handler prints it, once
