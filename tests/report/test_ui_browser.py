"""``tl-bench ui`` in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

A small study is run for real, ``tl-bench ui`` is started on its store, and the
page it prints must land on the trials in MLflow's model-training view with the
recipe columns; the parent run's dashboard and Optuna plots must draw their
plots with nothing fetched from anywhere but 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.study.conftest import small_spec
from tl_bench.report import free_port
from tl_bench.spec import load_spec
from tl_bench.report import log_study_dashboard
from tl_bench.study import RunOptions, run_spec

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (.ci/run installs Debian's chromium)"),
]
REPO = Path(__file__).resolve().parents[2]
RECIPE = ["backbone", "weights", "freeze_depth", "neck", "head", "val_acc", "test_acc", "train_time_s"]


def _wait_for(port: int, process: subprocess.Popen[str], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError("tl-bench ui did not answer")


def _printed_url(process: subprocess.Popen[str], study: str) -> str:
    """The trials URL ``tl-bench ui`` prints; the rest of its output (the server's log) is drained
    in the background, so that a full pipe never stalls the server."""
    assert process.stdout is not None
    for line in process.stdout:
        if f"trials of {study}:" in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return line.split(": ", 1)[1].strip()
    raise AssertionError("tl-bench ui printed no trials URL")


def _iframe_plots(page, outside: list[str]) -> int:  # type: ignore[no-untyped-def]
    """Number of plotly figures drawn in the artifact's iframe (waits for them)."""
    frame = page.frame_locator("iframe.mlflow-html-iframe")
    frame.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
    return frame.locator(".js-plotly-plot").count()


def test_ui_lands_on_the_trials_with_recipe_columns_and_plots_render_offline(tmp_path: Path, mlflow_db: str) -> None:
    from playwright.sync_api import sync_playwright

    path = small_spec(tmp_path, description="Browser check of the MLflow UI.")
    spec = load_spec(path)
    # as `tl-bench run` does: the dashboard is the caller's, logged once the study is summarised
    outcome = run_spec(spec, RunOptions(n_trials=3, on_summary=log_study_dashboard), quiet=True)[0]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])  # this tl_bench
    ui = subprocess.Popen([sys.executable, "-m", "tl_bench", "ui", "--spec", str(path), "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
                          start_new_session=True)
    outside: list[str] = []
    try:
        url = _printed_url(ui, "small")
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "workflowType=machine_learning" in url
        _wait_for(port, ui)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1800, "height": 1000})

            def guard(route) -> None:  # type: ignore[no-untyped-def]
                host = urlsplit(route.request.url).hostname
                if route.request.url.startswith(("blob:", "data:")) or host == "127.0.0.1":
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            page.goto(url)
            headers = page.locator("[role=columnheader]")
            page.get_by_role("columnheader", name="val_acc").first.wait_for(timeout=120_000)
            shown = set(headers.all_inner_texts())
            assert set(RECIPE) <= shown, f"recipe columns missing: {set(RECIPE) - shown}"
            assert page.get_by_text("Model training").first.is_visible()
            assert page.get_by_text("Runs").first.is_visible()
            names = set(page.locator("a").filter(has_text=re.compile(r"-t\d+$")).all_inner_texts())
            assert len(names) == 3  # the three trials (the grid draws each row twice: pinned and scrolled part)
            assert not page.locator("a").filter(has_text=re.compile(r"^(digits|pretraining)$")).count()

            experiment = re.search(r"#/experiments/(\d+)", url).group(1)  # type: ignore[union-attr]
            base = f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{outcome.parent_run_id}"
            for artifact in ("dashboard.html", "optuna_plots.html"):
                page.goto(f"{base}/artifacts/{artifact}?workflowType=machine_learning")
                assert _iframe_plots(page, outside) >= 1, artifact
            page.goto(f"{base}?workflowType=machine_learning")
            page.get_by_text("Best trial:").first.wait_for(timeout=60_000)
            page.get_by_text("sampler.name").first.wait_for(timeout=60_000)
            browser.close()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
    assert outside == [], f"requests left 127.0.0.1: {outside[:5]}"
