"""Security defaults: the UI listens on loopback only, checkpoints and study files cannot run code."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from reliability_support import tlb_popen
from tl_bench.errors import SpecError, WeightsError
from tl_bench.models import build_model
from tl_bench.models.weights import read_state_dict
from tl_bench.spec import load_spec


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appears if the pickle is ever executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def test_a_pickle_checkpoint_with_code_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    state = build_model("test_resnet", num_classes=3, img_size=16).backbone.model.state_dict()
    torch.save({"state_dict": state, "extra": Payload(marker)}, evil)

    with pytest.raises(WeightsError, match=r"evil\.pth' cannot be read"):
        read_state_dict(evil)
    with pytest.raises(WeightsError):
        build_model("test_resnet", num_classes=3, img_size=16, weights=str(evil))
    assert not marker.exists()

    # The payload is live: a full unpickle (never done by tl-bench) runs it.
    torch.load(evil, weights_only=False)["extra"].close()
    assert marker.exists()


def test_a_study_file_cannot_construct_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    spec = tmp_path / "study.yaml"
    spec.write_text(f'name: !!python/object/apply:builtins.open ["{marker}", "w"]\n')
    with pytest.raises(SpecError, match="study.yaml"):
        load_spec(spec)
    assert not marker.exists()


def _listeners(port: int) -> set[str]:
    """Local addresses listening on ``port`` (IPv4 and IPv6), from the kernel's socket tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = bytes.fromhex(address)
                    found.add(socket.inet_ntop(socket.AF_INET6, b"".join(words[i:i + 4][::-1] for i in range(0, 16, 4))))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp to see listening sockets")
def test_ui_listens_on_loopback_only_by_default(tmp_path: Path, mlflow_db: str) -> None:
    proc = tlb_popen(["ui", "--tracking-uri", mlflow_db, "--port", "0"], cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"MLflow UI: http://127\.0\.0\.1:(\d+)", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        port = int(match.group(1))
        deadline = time.monotonic() + 120
        while not _listeners(port):
            assert proc.poll() is None and time.monotonic() < deadline, "the UI never listened"
            time.sleep(0.25)
        assert _listeners(port) == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
