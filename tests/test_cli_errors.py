"""Command-line mistakes get one line and exit 2 (not Typer's usage box), a near miss its "did you
mean"; help is plain text; option ranges say what the study accepts; the UI's host is checked
before anything is bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from tl_bench.cli import app, main
from tl_bench.report import is_loopback


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["run", "x.yaml", "--n-trials", "0"], "error: Invalid value for '--n-trials': Input should be greater than or equal to 1 (see tl-bench run --help)"),
        (["run", "x.yaml", "--timeout", "0"], "error: Invalid value for '--timeout': 0 is not accepted; accepted: a positive number of seconds (see tl-bench run --help)"),
        (["run", "x.yaml", "--n-trial", "3"], "error: No such option: --n-trial (did you mean '--n-trials'?) (see tl-bench run --help)"),
        (["run"], "error: Missing argument 'SPEC'. (see tl-bench run --help)"),
        (["leaderboard", "--top", "many"], "error: Invalid value for '--top': Input should be a valid integer, unable to parse string as an integer (see tl-bench leaderboard --help)"),
        (["nosuch"], "error: No such command 'nosuch'. (see tl-bench --help)"),
        (["leaderboard", "--formt", "md"], "error: No such option: --formt (did you mean '--format'?) (see tl-bench leaderboard --help)"),
        (["leaderboard", "--format", "mdd"], "error: unknown --format 'mdd' (did you mean 'md'?); accepted: csv, md, json"),
        (["list", "necs"], "error: No such command 'necs'. Did you mean 'necks'? (see tl-bench list --help)"),
    ],
)
def test_a_command_line_mistake_is_one_line_and_exit_2(args: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(args, capsys)
    assert (code, out, err) == (2, "", line + "\n")


def test_the_declared_ranges_accept_what_the_study_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 1 trial and a fraction of a second pass the options; the missing file is the next thing said.
    code, _, err = _run(["run", str(tmp_path / "x.yaml"), "--n-trials", "1", "--timeout", "0.5"], capsys)
    assert code == 2 and "x.yaml: top level: file not found" in err


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*path, name))
    return paths


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert ("pretrain",) in paths and ("list", "necks") in paths
    for path in paths:
        code, out, err = _run([*path, "--help"], capsys)
        assert code == 0 and out.startswith("Usage: tl-bench"), (path, out, err)
        # no reStructuredText or Markdown quoting, no rich boxes, no type beside a flag
        assert "`" not in out and "<bool>" not in out and "╭" not in out, (path, out)
    code, out, _ = _run(["pretrain", "--help"], capsys)
    assert "lists local:NAME weights" in out and "  --json  " in out


def test_no_command_shows_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([], capsys)
    assert code == 0 and "Usage: tl-bench" in out + err


def test_loopback_names_are_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.0.2.1"))


@pytest.mark.parametrize("host", ["localhost", "0.0.0.0"])
def test_ui_checks_the_store_before_it_warns_or_binds(tmp_path: Path, host: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}", "--host", host], capsys)
    assert code == 2 and err.startswith("error: no MLflow store at") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--name", "shape"], "--name 'shape' is not a pretrain entry of {spec} (did you mean 'shapes'?); accepted: shapes"),
        (["--backbone", "test_resnt"], "--backbone 'test_resnt' is not a backbone of {spec} (did you mean 'test_resnet'?); accepted: test_resnet"),
    ],
    ids=["name", "backbone"],
)
def test_pretrain_names_a_misspelled_entry_before_training(
    tmp_path: Path, args: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "study.yaml"
    spec.write_text(
        "name: small\ndatasets: [digits]\n"
        "space: {backbones: [{name: test_resnet, weights: [scratch, 'local:shapes']}], freeze_depth: [all], "
        "neck: [gap], head: [linear]}\nbudget: {n_trials: 1}\n"
        "pretrain: {shapes: {dataset: shapes, epochs: 1}}\n"
    )
    code, out, err = _run(["pretrain", str(spec), *args], capsys)
    assert (code, out, err) == (2, "", "error: " + line.format(spec=spec) + "\n")
    assert not (tmp_path / "runs").exists()  # nothing was trained or recorded
