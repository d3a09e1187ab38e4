"""The progress display: library log lines print on their own lines above the live bars."""

from __future__ import annotations

import io
import logging
import re

import optuna
import pytest
from rich.console import Console

from tl_bench.study.progress import LIBRARY_LOGGERS, StudyProgress

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def optuna_info():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    yield
    optuna.logging.set_verbosity(verbosity)


def test_optuna_log_line_is_not_glued_to_the_bar(optuna_info: None, capfd: pytest.CaptureFixture[str]) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system=None, width=100)
    before = {name: logging.getLogger(name).handlers[:] for name in LIBRARY_LOGGERS}
    with StudyProgress(console) as progress:
        progress.start("digits", None, total=3)
        study = optuna.create_study(study_name="glued")  # logs "A new study created in memory ..."
        progress.attach("digits", study)
        logging.getLogger("mlflow.tracking").warning("a warning from MLflow")
    lines = re.split(r"[\r\n]", _CONTROL.sub("", buffer.getvalue()))
    said = [line for line in lines if "A new study created in memory with name: glued" in line]
    assert said and all("digits" not in line and "0/3" not in line for line in said), lines
    assert any("a warning from MLflow" in line and "digits" not in line for line in lines), lines
    assert "A new study created" not in capfd.readouterr().err  # nothing beside the display
    assert {name: logging.getLogger(name).handlers for name in LIBRARY_LOGGERS} == before


def test_quiet_progress_leaves_library_logging_alone() -> None:
    before = {name: logging.getLogger(name).handlers[:] for name in LIBRARY_LOGGERS}
    with StudyProgress(quiet=True):
        assert {name: logging.getLogger(name).handlers for name in LIBRARY_LOGGERS} == before
