"""The tested ranges of the libraries whose private API is used: one home, the same in pyproject, enforced."""

from __future__ import annotations

import tomllib
from pathlib import Path

import mlflow
import optuna
import pytest

from tl_bench.versions import TESTED, UntestedVersionError, check_tested, requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.mark.parametrize("name", sorted(TESTED))
def test_pyproject_pins_the_tested_range(name: str) -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert requirement(name) in dependencies


def test_installed_versions_are_in_range_and_others_are_refused_in_one_line() -> None:
    check_tested("optuna", optuna.__version__)
    check_tested("mlflow", mlflow.__version__)
    for name, version in (("optuna", "5.2.0"), ("optuna", "3.6.1"), ("mlflow", "3.18.0")):
        with pytest.raises(UntestedVersionError) as info:
            check_tested(name, version)
        message = str(info.value)
        assert "\n" not in message and f"{name} {version} is untested" in message
        assert f"tested: {requirement(name)}" in message
