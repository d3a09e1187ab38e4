"""``tl-bench ui`` in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

A small study of two datasets is run for real and ``tl-bench ui`` started on its
store once for the module. The URLs it prints must open MLflow's model-training
view and MLflow's own links must keep it (the experiment list, a trial of the
table); the trials open with dataset and recipe columns and no shared-view banner,
the chart view on accuracy against cost and recipe; the parent run's dashboard and
Optuna plots draw with nothing fetched from anywhere but 127.0.0.1.
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
from tl_bench.tracking.view import CHARTS_SECTION

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (.ci/run installs Debian's chromium)"),
]
REPO = Path(__file__).resolve().parents[2]
RECIPE = ["dataset", "backbone", "weights", "freeze_depth", "neck", "head", "val_acc", "test_acc", "train_time_s"]


def _wait_for(port: int, process: subprocess.Popen[str], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError("tl-bench ui did not answer")


def _printed_urls(process: subprocess.Popen[str], study: str) -> tuple[str, str]:
    """The first URL ``tl-bench ui`` prints (the UI) and the trials URL of ``study``; the rest of its output
    (the server's log) is drained in the background, so that a full pipe never stalls the server."""
    assert process.stdout is not None
    first = ""
    for line in process.stdout:
        if line.startswith("MLflow UI: "):
            first = line.split(": ", 1)[1].split()[0]
        if f"trials of {study}:" in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return first, line.split(": ", 1)[1].strip()
    raise AssertionError("tl-bench ui printed no trials URL")


def _iframe_plots(page, outside: list[str]) -> int:  # type: ignore[no-untyped-def]
    """Number of plotly figures drawn in the artifact's iframe (waits for them)."""
    frame = page.frame_locator("iframe.mlflow-html-iframe")
    frame.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
    return frame.locator(".js-plotly-plot").count()


class Served:
    """A study of two datasets, run for real, and ``tl-bench ui`` serving its store: shared by the module."""

    def __init__(self, tmp: Path) -> None:
        datasets = [{"name": n, "img_size": 16, "train_size": 200, "val_size": 100} for n in ("digits", "shapes")]
        self.path = small_spec(tmp, description="Browser check of the MLflow UI.", datasets=datasets,
                               budget={"n_trials": 2})
        # as `tl-bench run` does: the dashboard is the caller's, logged once the study is summarised
        self.outcomes = run_spec(load_spec(self.path), RunOptions(on_summary=log_study_dashboard), quiet=True)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])  # this tl_bench
        self.ui = subprocess.Popen([sys.executable, "-m", "tl_bench", "ui", "--spec", str(self.path), "--port",
                                    str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=env, cwd=tmp, start_new_session=True)
        self.first, self.trials = _printed_urls(self.ui, "small")
        _wait_for(self.port, self.ui)
        self.outside: list[str] = []

    def page(self, playwright):  # type: ignore[no-untyped-def]
        """A new browser (no stored choices: a first visit) whose requests may reach 127.0.0.1 only."""
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1800, "height": 1000})

        def guard(route) -> None:  # type: ignore[no-untyped-def]
            host = urlsplit(route.request.url).hostname
            if route.request.url.startswith(("blob:", "data:")) or host == "127.0.0.1":
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        return context.new_page()

    def close(self) -> None:
        os.killpg(self.ui.pid, signal.SIGTERM)
        self.ui.wait(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("ui-browser")
    (tmp / "runs").mkdir()
    shutil.copyfile(mlflow_template, tmp / "runs" / "mlflow.db")
    server = Served(tmp)
    yield server
    server.close()
    assert server.outside == [], f"requests left 127.0.0.1: {server.outside[:5]}"


def _training_view(page) -> bool:  # type: ignore[no-untyped-def]
    """Whether MLflow shows its model-training view (its GenAI view lists "Evaluation runs" in the sidebar)."""
    page.get_by_text("Model training").first.wait_for(timeout=60_000)
    return not page.get_by_text("Evaluation runs").count()


def test_the_first_url_lists_the_study_first_in_the_training_view(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    assert served.first.startswith(f"http://127.0.0.1:{served.port}/tl-bench/open?to=/experiments")
    with sync_playwright() as p:
        page = served.page(p)
        page.goto(served.first)
        page.wait_for_url(re.compile(r"#/experiments\?workflowType=machine_learning"), timeout=60_000)
        names = page.locator("a").filter(has_text=re.compile(r"^(small|tl-bench-assets|Default)$"))
        names.first.wait_for(timeout=60_000)
        assert names.all_inner_texts()[0] == "small"  # the study, not tl-bench's assets, heads the list
        assert _training_view(page)
        page.locator("a", has_text=re.compile("^small$")).first.click()  # MLflow's own link: no workflowType
        page.get_by_role("columnheader", name="Run Name").first.wait_for(timeout=120_000)
        assert "/runs" in page.url and "/traces" not in page.url and _training_view(page)


def test_trials_open_with_dataset_and_recipe_columns_and_a_trial_stays_in_training_runs(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    assert served.trials.startswith(f"http://127.0.0.1:{served.port}/tl-bench/open?to=/experiments/")
    with sync_playwright() as p:
        page = served.page(p)
        page.goto(served.trials)
        page.get_by_role("columnheader", name="val_acc").first.wait_for(timeout=120_000)
        shown = set(page.locator("[role=columnheader]").all_inner_texts())
        assert set(RECIPE) <= shown, f"recipe columns missing: {set(RECIPE) - shown}"
        assert not page.get_by_text("viewing a shared view").count()  # stored as this browser's own view
        names = set(page.locator("a").filter(has_text=re.compile(r"-t\d+$")).all_inner_texts())
        assert len(names) == 4 and {n.split("-")[0] for n in names} == {"digits", "shapes"}  # unique per dataset
        assert not page.locator("a").filter(has_text=re.compile(r"^(digits|shapes|pretraining)$")).count()
        page.locator("a").filter(has_text=re.compile(r"-t\d+$")).first.click()
        page.get_by_role("tab", name="Overview").first.wait_for(timeout=60_000)
        assert re.search(r"#/experiments/\d+/runs/\w+", page.url) and _training_view(page)
        page.goto(served.trials)  # a second visit: still no banner, the view as left
        page.get_by_role("columnheader", name="val_acc").first.wait_for(timeout=120_000)
        assert not page.get_by_text("viewing a shared view").count()


def test_the_chart_view_opens_on_accuracy_against_cost_and_recipe(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        page = served.page(p)
        page.goto(served.trials)
        page.get_by_role("columnheader", name="val_acc").first.wait_for(timeout=120_000)
        experiment = re.search(r"#/experiments/(\d+)", page.url).group(1)  # type: ignore[union-attr]
        page.goto(f"http://127.0.0.1:{served.port}/#/experiments/{experiment}/runs?compareRunsMode=CHART")
        page.get_by_text(CHARTS_SECTION).first.wait_for(timeout=120_000)
        for title in ("train_time_s vs. val_acc", "params_trainable vs. val_acc", "freeze_depth vs. val_acc",
                      "Parallel Coordinates"):
            assert page.get_by_text(title).first.is_visible(), title
        assert not page.get_by_text("cache_hit").count() and not page.get_by_text("ema_tested").count()


def test_the_parent_runs_plots_render_offline(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        page = served.page(p)
        page.goto(served.trials)
        page.get_by_role("columnheader", name="val_acc").first.wait_for(timeout=120_000)
        experiment = re.search(r"#/experiments/(\d+)", page.url).group(1)  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{served.port}/#/experiments/{experiment}/runs/{served.outcomes[0].parent_run_id}"
        for artifact in ("dashboard.html", "optuna_plots.html"):
            page.goto(f"{base}/artifacts/{artifact}?workflowType=machine_learning")
            assert _iframe_plots(page, served.outside) >= 1, artifact
        page.goto(f"{base}?workflowType=machine_learning")
        page.get_by_text("Best trial:").first.wait_for(timeout=60_000)
        page.get_by_text("sampler.name").first.wait_for(timeout=60_000)
