"""A registry of one kind of model part: the string a study file names it by -> its class.

The same string is the Optuna choice, the MLflow parameter and the CSV value,
so a registry is a plain mapping that can also refuse an unknown name in one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from tl_bench.errors import TLBenchError, did_you_mean

T = TypeVar("T")


class Registry(dict[str, T]):
    """``name -> class`` in registration order; ``check(name)`` raises ``error`` listing the names."""

    def __init__(self, kind: str, error: type[TLBenchError], entries: Mapping[str, T]) -> None:
        super().__init__(entries)
        self.kind, self.error = kind, error

    def check(self, name: str) -> T:
        """The class registered as ``name``; ``error`` naming every registered one otherwise."""
        if name not in self:
            raise self.error(f"unknown {self.kind} {name!r}{did_you_mean(name, self)}", ", ".join(self))
        return self[name]


__all__ = ["Registry"]
