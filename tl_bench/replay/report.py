"""Time to quality of each strategy, side by side: as values (``--json``) and as a small table.

Quality is the table's best validation accuracy less one point (``TOLERANCE``); a search reaches it
when a trial *completes* with at least that accuracy, after the simulated seconds of every epoch run
until then (that trial's included). The study's own search, as recorded, is charged the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from tl_bench.replay.simulate import Search

TOLERANCE = 0.01  # one point of validation accuracy


def time_to_quality(search: Search, target: float) -> float | None:
    """Simulated seconds until a trial completes at ``target`` or better; None when none does."""
    seconds = 0.0
    for trial in search.trials:
        seconds += trial.seconds
        if trial.state == "COMPLETE" and trial.val_acc >= target:
            return seconds
    return None


def best_curve(search: Search) -> list[tuple[float, float]]:
    """(simulated seconds, best validation accuracy of the complete trials so far) after each completing trial
    that improves it: the search's time-to-quality curve."""
    out: list[tuple[float, float]] = []
    seconds, best = 0.0, -math.inf
    for trial in search.trials:
        seconds += trial.seconds
        if trial.state == "COMPLETE" and trial.val_acc > best:
            best = trial.val_acc
            out.append((round(seconds, 3), best))
    return out


@dataclass(frozen=True)
class StrategySummary:
    """One strategy over its seeds (one search for the recorded study)."""

    strategy: str
    searches: tuple[Search, ...]
    target: float

    @property
    def times(self) -> list[float | None]:
        return [time_to_quality(s, self.target) for s in self.searches]

    def stats(self) -> dict[str, Any]:
        """Median, min and max time to quality over the searches that reached it, and how many did."""
        reached = [t for t in self.times if t is not None]
        return {
            "seeds": len(self.searches),
            "reached": len(reached),
            "median_s": statistics.median(reached) if reached else None,
            "min_s": min(reached) if reached else None,
            "max_s": max(reached) if reached else None,
            "median_total_s": statistics.median(s.seconds for s in self.searches),
            "median_trials": statistics.median(len(s.trials) for s in self.searches),
            "median_pruned": statistics.median(sum(t.state == "PRUNED" for t in s.trials) for s in self.searches),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            **self.stats(),
            "searches": [{"seed": s.seed, "time_to_quality_s": t, "total_s": round(s.seconds, 3),
                          "trials": [{"number": x.number, "config": x.config, "state": x.state, "epochs": x.epochs,
                                      "seconds": round(x.seconds, 3), "val_acc": x.val_acc} for x in s.trials],
                          "curve": best_curve(s)}
                         for s, t in zip(self.searches, self.times)],
        }


def summaries(recorded: Search, replays: Sequence[Search], best_val_acc: float) -> list[StrategySummary]:
    """The recorded study first, then one summary per replayed strategy (its seeds together)."""
    target = best_val_acc - TOLERANCE
    out = [StrategySummary(recorded.strategy, (recorded,), target)]
    by_strategy: dict[str, list[Search]] = {}
    for search in replays:
        by_strategy.setdefault(search.strategy, []).append(search)
    out += [StrategySummary(name, tuple(searches), target) for name, searches in by_strategy.items()]
    return out


def report_dict(study: str, dataset: str, best_val_acc: float, rows: Sequence[StrategySummary]) -> dict[str, Any]:
    """The ``--json`` object: the target, then each strategy with its searches and curves."""
    return {"study": study, "dataset": dataset, "best_val_acc": best_val_acc, "tolerance": TOLERANCE,
            "target": best_val_acc - TOLERANCE, "strategies": [row.to_dict() for row in rows]}


def print_report(study: str, dataset: str, best_val_acc: float, rows: Sequence[StrategySummary],
                 console: Console | None = None) -> None:
    """The strategies side by side: simulated seconds to within one point of the table's best."""
    table = RichTable(title=f"{study} on {dataset}: simulated seconds to val_acc >= {best_val_acc - TOLERANCE:.4f}",
                      caption=f"the table's best {best_val_acc:.4f} less one point; total, trials, pruned: medians")
    for header in ("strategy", "seeds", "reached", "median s", "min s", "max s", "total s", "trials", "pruned"):
        table.add_column(header, justify="left" if header == "strategy" else "right", no_wrap=True)
    for row in rows:
        stats = row.stats()
        table.add_row(row.strategy, str(stats["seeds"]), f"{stats['reached']}/{stats['seeds']}",
                      _seconds(stats["median_s"]), _seconds(stats["min_s"]), _seconds(stats["max_s"]),
                      _seconds(stats["median_total_s"]), f"{stats['median_trials']:g}",
                      f"{stats['median_pruned']:g}")
    if console is None:
        console = Console()
        console.width = max(console.width, 110)  # one row per strategy, also in a log or a pipe
    console.print(table)


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.2f}"


__all__ = ["TOLERANCE", "StrategySummary", "best_curve", "print_report", "report_dict", "summaries",
           "time_to_quality"]
