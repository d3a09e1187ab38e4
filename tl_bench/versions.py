"""The versions of the libraries whose private API tl-bench uses, as tested: one home for the range.

``pyproject.toml`` pins the same ranges (a test keeps them equal). A version outside them, installed
by hand, is refused in one line naming the tested range, before anything private of it is touched.
"""

from __future__ import annotations

from packaging.version import Version

from tl_bench.errors import TLBenchError

# name -> (lowest tested, first untested): Optuna's storage internals (study/storage.py) and MLflow's
# SQLAlchemy store and session (tracking/) are used beyond their public API.
TESTED: dict[str, tuple[str, str]] = {"optuna": ("4.0", "5.2"), "mlflow": ("3.0", "3.18")}


class UntestedVersionError(TLBenchError):
    """An installed library outside the range tl-bench was tested with."""


def requirement(name: str) -> str:
    low, high = TESTED[name]
    return f"{name}>={low},<{high}"


def check_tested(name: str, version: str) -> None:
    """UntestedVersionError unless ``version`` of ``name`` is in its tested range."""
    low, high = TESTED[name]
    if not Version(low) <= Version(version) < Version(high):
        raise UntestedVersionError(f"{name} {version} is untested with tl-bench, which uses its private API",
                                   f"{requirement(name)} (pip install '{requirement(name)}')", lead="; tested: ")


__all__ = ["TESTED", "UntestedVersionError", "check_tested", "requirement"]
