"""Dashboards: YAML definitions validated, one offline HTML file with every panel."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report.test_trial_store import TrialStore
from tl_bench.report import DEFAULT_DASHBOARD, load_dashboard, render_dashboard
from tl_bench.errors import OutputError

REPO = Path(__file__).resolve().parents[2]
OVERVIEW = REPO / "dashboards" / "overview.yaml"
TITLES = [p.title for p in DEFAULT_DASHBOARD.panels]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TrialStore:
    store = TrialStore(tmp_path_factory.mktemp("dash-store"), study="dash")
    for i, (backbone, head, neck, depth) in enumerate([
        ("test_resnet", "linear", "gap", 0), ("test_resnet", "mlp", "gem", 2), ("test_resnet", "linear", "gap", "all"),
        ("test_vit", "linear", "gap", 0), ("test_vit", "mlp", "attn", 1),
    ]):
        acc = 0.5 + 0.08 * i
        store.trial("digits", backbone=backbone, head=head, neck=neck, freeze_depth=depth, val_acc=acc,
                    test_acc=acc - 0.01, train_time_s=10.0 - i, params_trainable=1000 * (i + 1))
    for depth, acc in ((0, 0.9), ("all", 0.85)):  # pretrained beside the scratch ones: the gain panels draw
        store.trial("digits", backbone="test_resnet", weights="pretrained", freeze_depth=depth, val_acc=acc,
                    test_acc=acc - 0.01)
    store.trial("shapes", backbone="test_vit", val_acc=0.7, test_acc=0.69)
    store.importances("digits", {"lr": 0.6, "freeze_depth": 0.3, "head": 0.1})
    return store


def _panel_sections(page: str) -> dict[str, str]:
    parts = re.findall(r'<section class="panel (\w+)"><h2>(.*?)</h2>(.*?)</section>', page, flags=re.S)
    return {title: body for _, title, body in parts}


def test_overview_yaml_is_the_built_in_default() -> None:
    assert load_dashboard(OVERVIEW) == DEFAULT_DASHBOARD
    assert load_dashboard(None) == DEFAULT_DASHBOARD


def test_every_panel_renders_offline(store: TrialStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a new folder is made below the working folder, and only there
    out = render_dashboard(OVERVIEW, store.uri, study="dash", out=Path("sub") / "overview.html")
    with pytest.raises(OutputError, match=r"folder .*elsewhere does not exist; accepted: a file path in an existing"):
        render_dashboard(OVERVIEW, store.uri, study="dash", out=tmp_path.parent / "elsewhere" / "overview.html")
    assert not (tmp_path.parent / "elsewhere").exists()
    page = out.read_text(encoding="utf-8")
    sections = _panel_sections(page)
    assert list(sections) == TITLES
    assert "<table" in sections["Leaderboard"] and "test_vit" in sections["Leaderboard"]
    assert sections["Accuracy against training cost"].count("plotly-graph-div") == 2  # one figure per dataset
    assert "Pareto front" in sections["Accuracy against training cost"]
    for title in TITLES[1:]:
        assert "plotly-graph-div" in sections[title], title
    assert '"freeze_depth"' in sections["Parameter importances (Optuna)"]
    # Offline: plotly.js is inline, nothing is fetched.
    assert "<script src" not in page and "<link" not in page
    assert page.count("plotly.js v") >= 1 and len(page) > 3_000_000


def test_panels_without_data_show_a_note(tmp_path: Path) -> None:
    empty = TrialStore(tmp_path / "empty", study="nothing")
    out = render_dashboard(None, empty.uri, out=tmp_path / "empty.html")
    sections = _panel_sections(out.read_text(encoding="utf-8"))
    assert list(sections) == TITLES
    for title, body in sections.items():
        assert 'class="note"' in body and "plotly-graph-div" not in body, title


def test_dataset_filter_and_an_unlogged_metric(store: TrialStore, tmp_path: Path) -> None:
    definition = tmp_path / "d.yaml"
    definition.write_text("title: t\nmetric: test_acc\npanels:\n  - kind: pareto\n    title: P\n"
                          "  - kind: heatmap\n    title: H\n    metric: val_top9\n", encoding="utf-8")
    page = render_dashboard(definition, store.uri, dataset="shapes", out=tmp_path / "d.html").read_text("utf-8")
    sections = _panel_sections(page)
    assert sections["P"].count("plotly-graph-div") == 1  # shapes only
    assert "val_top9" in sections["H"] and 'class="note"' in sections["H"]


@pytest.mark.parametrize(("text", "words"), [
    ("panels:\n  - kind: pie\n", "panels.0: Input tag 'pie'"),
    ("panels:\n  - kind: heatmap\n    colour: red\n", "panels.0.heatmap.colour: unknown field; accepted: kind, title, rows"),
    ("panels:\n  - kind: heatmap\n    rows: optimizer\n", "panels.0.heatmap.rows"),
    ("filters:\n  studie: x\npanels:\n  - kind: leaderboard\n", "filters.studie: unknown field; accepted: study"),
    ("panels: []\n", "panels: List should have at least 1 item"),
    ("- just a list\n", "expected a mapping"),
    ("panels: [\n", "is not valid YAML"),
])
def test_bad_definitions_are_one_line_errors(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OutputError) as err:
        load_dashboard(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_dashboard_command(store: TrialStore, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-m", "tl_bench", "dashboard", str(OVERVIEW), "--out", str(out),
                           "--tracking-uri", store.uri, "--dataset", "digits"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    assert list(_panel_sections(out.read_text(encoding="utf-8"))) == TITLES


def test_pruned_trials_say_at_which_epoch_and_why(tmp_path: Path) -> None:
    from rich.console import Console

    from tl_bench.report import leaderboard, print_leaderboard
    from tl_bench.report.dashboard import dashboard_html
    from tl_bench.tracking import pruned_tags

    store = TrialStore(tmp_path, study="pr")
    store.trial("digits", val_acc=0.8, test_acc=0.7)
    store.trial("digits", backbone="test_vit", state="PRUNED", drop=("val_acc", "test_acc"),
                tags=pruned_tags(2, "MedianPruner: val_acc 0.1000 at epoch 2"))
    page = dashboard_html(tracking_uri=store.uri, study="pr")
    assert "pruned at epoch 2 (MedianPruner: val_acc 0.1000 at epoch 2)" in page
    board = leaderboard(store.uri, study="pr", include_unfinished=True)
    row = board[board["backbone"] == "test_vit"].iloc[0]
    assert row["state"] == "PRUNED" and row["pruned_epoch"] == 2
    console = Console(file=io.StringIO(), width=250)
    print_leaderboard(board, console=console)
    assert "pruned at epoch 2" in console.file.getvalue()  # not a dash


def test_a_dashboard_artifact_loads_plotly_instead_of_embedding_it(store: TrialStore) -> None:
    from plotly.offline import get_plotlyjs

    from tl_bench.report.dashboard import dashboard_html

    embedded = dashboard_html(tracking_uri=store.uri, study="dash")
    shared = dashboard_html(tracking_uri=store.uri, study="dash", plotly_head="<script src='shared.mjs'></script>")
    assert get_plotlyjs()[:2000] in embedded and get_plotlyjs()[:2000] not in shared
    assert "<script src='shared.mjs'></script></head>" in shared
    assert len(embedded) - len(shared) > 4_000_000
