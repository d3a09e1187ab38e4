"""What ``tl-bench doctor`` found: one ``Finding`` per disagreement, gathered in a ``DoctorReport``.

Kept apart from the checks so that each check module (trials, kept models,
pretraining) names its findings without importing the others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Finding:
    kind: str
    study: str
    trial: int | None
    run_id: str | None
    detail: str
    repair: str  # what --repair does about it
    repaired: bool = False


@dataclass
class DoctorReport:
    studies: list[str] = field(default_factory=list)
    trials: int = 0
    runs: int = 0
    findings: list[Finding] = field(default_factory=list)
    repair: bool = False

    @property
    def left(self) -> list[Finding]:
        """Findings not repaired (all of them without ``repair``)."""
        return [f for f in self.findings if not f.repaired]

    def to_dict(self) -> dict[str, Any]:
        return {
            "studies": self.studies,
            "trials": self.trials,
            "runs": self.runs,
            "repair": self.repair,
            "consistent": not self.left,
            "findings": [asdict(f) for f in self.findings],
        }


__all__ = ["DoctorReport", "Finding"]
