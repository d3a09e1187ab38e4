"""``tl-bench ui``: the MLflow server on a study's store, on loopback, answering the REST API."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.report.test_trial_store import TrialStore
from tl_bench.errors import StorageError, TLBenchError
from tl_bench.report import check_port, free_port, leaderboard, serve_ui, ui_command


def test_command_for_a_sqlite_store_keeps_artifacts_beside_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    command = ui_command(uri, port=5123)
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    pairs = dict(zip(command[4::2], command[5::2]))
    assert pairs["--backend-store-uri"] == uri and pairs["--host"] == "127.0.0.1" and pairs["--port"] == "5123"
    assert pairs["--default-artifact-root"] == (tmp_path / "runs" / "artifacts").as_uri()
    postgres = ui_command("postgresql://u@db/mlflow")
    assert "--default-artifact-root" not in postgres and "postgresql://u@db/mlflow" in postgres


def test_a_tracking_server_is_announced_not_started_and_must_answer() -> None:
    # Any HTTP answer counts as a server; a stand-in on loopback answers 404 to everything.
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    lines: list[str] = []
    try:
        assert serve_ui(f"http://user:secret@127.0.0.1:{port}/", announce=lines.append) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert lines == [f"MLflow UI: http://user:***@127.0.0.1:{port}/#/experiments?workflowType=machine_learning "
                     "(served by the tracking server)"]
    with pytest.raises(StorageError, match=rf"tracking server 'http://127.0.0.1:{port}' does not answer"):
        serve_ui(f"http://127.0.0.1:{port}", announce=lines.append)  # closed now: nothing is announced
    assert len(lines) == 1


def test_missing_store_and_busy_port_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no MLflow store at"):
        serve_ui(f"sqlite:///{tmp_path / 'none.db'}", port=free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(TLBenchError, match="cannot listen on 127.0.0.1:"):
            check_port("127.0.0.1", taken.getsockname()[1])


def _search(port: int, experiment_id: str) -> list[dict]:
    body = json.dumps({"experiment_ids": [experiment_id], "filter": "tags.`tlb.kind` = 'trial'",
                       "max_results": 100}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()).get("runs", [])


def _listening_hosts(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) of sockets listening on ``port``."""
    hosts = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            host, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                hosts.add(host)
    return hosts


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1


@pytest.mark.slow
def test_ui_serves_the_study_runs_over_rest_on_loopback(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, study="ui")
    expected = {store.trial("digits", backbone=b, val_acc=0.5 + i / 10, test_acc=0.5 + i / 10)
                for i, b in enumerate(["test_resnet", "test_vit"])}
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    ui = subprocess.Popen([sys.executable, "-m", "tl_bench", "ui", "--tracking-uri", store.uri, "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
                          start_new_session=True)
    runs: list[dict] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and ui.poll() is None:
            try:
                runs = _search(port, store.experiment_id)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        assert ui.poll() is None, "the UI exited early"
        assert {r["info"]["run_id"] for r in runs} == expected
        first = runs[0]["data"]
        assert {"backbone", "lr", "freeze_depth"} <= {p["key"] for p in first["params"]}
        assert {"val_acc", "test_acc"} <= {m["key"] for m in first["metrics"]}
        assert {t["key"] for t in first["tags"]} >= {"mlflow.parentRunId", "tlb.trial"}  # nested under the parent
        remote = leaderboard(f"http://127.0.0.1:{port}", study="ui")  # the leaderboard reads a server too
        assert set(remote["run_id"]) == expected and remote["rank"].tolist() == [1, 2]
        listening = _listening_hosts(port)
        assert listening and listening <= LOOPBACK, f"listening on {listening}, not only on loopback"
    finally:
        ui.send_signal(signal.SIGTERM)  # tl-bench stops its own server process group
        output, _ = ui.communicate(timeout=60)
    assert f"MLflow UI: http://127.0.0.1:{port}" in output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the server outlived tl-bench ui"
