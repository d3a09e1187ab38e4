"""What filling a cache entry cost: recorded with the entry, charged to every trial that uses it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FillCost:
    """What computing one cache entry cost, measured once when it was computed."""

    seconds: float  # wall clock of the backbone pass over the split
    flops: float  # forward FLOPs of that pass
    peak_mb: float  # largest memory growth during it (PeakMemory), the features it produced included

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> FillCost | None:
        try:
            values = json.loads(text) if text else None
            return cls(**{k: float(values[k]) for k in ("seconds", "flops", "peak_mb")}) if values else None
        except (ValueError, TypeError, KeyError):
            return None


__all__ = ["FillCost"]
