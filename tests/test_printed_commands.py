"""Every command tl-bench prints for the user to paste reads back, in a real shell, as the words meant:
a study folder holding spaces and ``$(...)`` is one argument, and nothing in it runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tl_bench.cli import main
from tl_bench.errors import OutputError
from tl_bench.shell import shell_command

HOSTILE = "my $(touch pwned) study's 'x'"  # a folder name a shell would split, run and unquote


def pasted(line: str, cwd: Path) -> list[str]:
    """The words bash reads from ``line`` as if it were pasted at its prompt (``printf`` in front of it,
    so that nothing but bash's own expansions runs)."""
    done = subprocess.run(["bash", "-c", f"printf '%s\\0' {line}"], cwd=cwd, capture_output=True, text=True,
                          check=True)
    return done.stdout.split("\0")[:-1]


def test_shell_command_quotes_each_word_and_hides_passwords(tmp_path: Path) -> None:
    line = shell_command("tl-bench", "ui", "--spec", Path(HOSTILE) / "study.yaml", "--tracking-uri",
                         "postgresql://me:secret@db/x", env={"MLFLOW_TRACKING_URI": "sqlite:///a b/mlflow.db"})
    assert "secret" not in line and line.startswith("MLFLOW_TRACKING_URI=")
    assert pasted(line, tmp_path) == ["MLFLOW_TRACKING_URI=sqlite:///a b/mlflow.db", "tl-bench", "ui", "--spec",
                                      f"{HOSTILE}/study.yaml", "--tracking-uri", "postgresql://me:***@db/x"]
    assert not (tmp_path / "pwned").exists()
    assert shell_command("tl-bench", "ui", "--spec", "studies/quickstart.yaml") == \
        "tl-bench ui --spec studies/quickstart.yaml"  # plain words stay as they were


@pytest.mark.slow
def test_the_refit_hint_is_quoted(tmp_path: Path, mlflow_template: Path) -> None:
    from tl_bench.refit import refit_dataset
    from tl_bench.spec import load_spec
    from tl_bench.tracking import Tracker

    folder = tmp_path / HOSTILE
    (folder / "runs").mkdir(parents=True)
    shutil.copyfile(mlflow_template, folder / "runs" / "mlflow.db")
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(_study()))
    spec = load_spec(path)
    # The study has begun (its parent run is there) and has no finished trial yet: nothing to refit.
    Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location).create_parent_run(
        study=spec.name, dataset="digits", optuna_study=spec.study_name("digits"))
    with pytest.raises(OutputError) as raised:
        refit_dataset(spec, spec.datasets[0])
    hint = re.search(r"run `(.*)` first", str(raised.value))
    assert hint is not None, str(raised.value)
    assert pasted(hint[1], tmp_path) == ["tl-bench", "run", str(path)]
    assert not (tmp_path / "pwned").exists()


def _study() -> dict[str, object]:
    return {
        "name": "paste",
        "datasets": [{"name": "digits", "img_size": 16, "train_size": 200, "val_size": 100}],
        "space": {"backbones": ["test_resnet"], "freeze_depth": ["all"], "lr": [0.3]},
        "fixed": {"epochs": 1, "batch_size": 100},
        "sampler": {"name": "random", "seed": 0},
        "budget": {"n_trials": 1},
    }


_COMMANDS = {  # label printed before a command -> the command, as the line holds it
    "ui": r"MLflow UI:  (.*)$", "mlflow ui": r"\(or: (.*)\)$", "leaderboard": r"Export the leaderboard:  (.*)$",
    "predict": r"Predict:  (.*)$", "export": r"  Export:  (.*)$", "serve": r"Serve:  (.*)$",
}


def _printed(out: str) -> dict[str, str]:
    found = {}
    for key, pattern in _COMMANDS.items():
        match = re.search(pattern, out, flags=re.MULTILINE)
        assert match is not None, f"no {key} command in:\n{out}"
        found[key] = match[1]
    return found


@pytest.mark.slow
def test_the_commands_after_a_run_paste_back_as_the_words_meant(
    tmp_path: Path, mlflow_template: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / HOSTILE
    (folder / "runs").mkdir(parents=True)
    shutil.copyfile(mlflow_template, folder / "runs" / "mlflow.db")
    (folder / "study.yaml").write_text(yaml.safe_dump(_study()))
    uri = f"sqlite:///{folder / 'runs' / 'mlflow.db'}"
    shown = f"{HOSTILE}/study.yaml"  # below the working folder: as the user would type it here
    for store in (["--spec", shown], ["--tracking-uri", uri]):  # the first run trains; the second only reports
        try:
            main(["run", shown, "--top", "3", *([] if store[0] == "--spec" else store)])
        except SystemExit as stop:
            assert stop.code in (0, None)
        commands = {key: pasted(line, tmp_path) for key, line in _printed(capsys.readouterr().out).items()}
        assert commands["ui"] == ["tl-bench", "ui", *store]
        assert commands["mlflow ui"] == ["mlflow", "ui", "--backend-store-uri", uri]
        assert commands["leaderboard"] == ["tl-bench", "leaderboard", *store, "--csv", "leaderboard.csv"]
        assert commands["predict"] == ["tl-bench", "predict", "models:/paste-digits@champion", "IMAGE_OR_FOLDER",
                                       *store]
        assert commands["export"] == ["tl-bench", "export", *store, "--dataset", "digits", "--out", "paste-digits"]
        assert commands["serve"][:2] == [f"MLFLOW_TRACKING_URI={uri}", "mlflow"]
    # A parent run left RUNNING is a finding of doctor's, which prints the command that repairs it.
    from mlflow.tracking import MlflowClient

    from tl_bench.tracking.names import KIND, KIND_STUDY

    client = MlflowClient(uri)
    parent = client.search_runs([client.get_experiment_by_name("paste").experiment_id],
                                f"tags.`{KIND}` = '{KIND_STUDY}'")[0]
    client.update_run(parent.info.run_id, status="RUNNING")
    with pytest.raises(SystemExit) as ended:
        main(["doctor", shown])
    assert ended.value.code == 1
    repair = re.search(r"to fix them:  (.*)$", capsys.readouterr().out, flags=re.MULTILINE)
    assert repair is not None and pasted(repair[1], tmp_path) == ["tl-bench", "doctor", shown, "--repair"]
    assert not (tmp_path / "pwned").exists()
