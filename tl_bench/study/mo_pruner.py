"""Multi-objective successive halving: early stopping for accuracy-against-cost studies.

Optuna's pruners judge one value (and ``trial.report`` is refused in multi-objective studies), so
tl-bench's epoch loop asks this rule instead, in the manner of MO-ASHA (Schmucker et al. 2021, as in
Syne Tune). At rung epochs ``min_epochs * reduction_factor**k``, each trial records its point
(validation accuracy at that epoch, maximised; its cost so far, minimised) on its Optuna trial; the
points of every trial that reached the same rung (running, complete, or pruned later on) are ranked
by non-dominated sorting, inside a front by crowding distance (the points that spread the front
widest first), and the first ``ceil(n / reduction_factor)`` go on. A trial outside them is stopped,
but only when some trial dominates it: a trial on the rung's front is never stopped, so no point
the study could end up wanting on its Pareto front is lost.

As in asynchronous successive halving the population of a rung grows as trials reach it; a trial is
judged once, against the trials there when it arrives. ``bootstrap_count`` makes the first trials
wait for company before anything is stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

Point = tuple[float, float]  # (accuracy, maximised; cost, minimised)
RUNG_ATTR = "mo_rung_{epoch}"  # Optuna trial user attribute: [accuracy, cost] at that rung epoch
# A trial pruned at a later rung still reached this one: it stays in this rung's population (as in ASHA).
RUNG_STATES = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class MOSuccessiveHalving:
    """The rule: rungs at ``min_epochs * reduction_factor**k`` epochs, the first 1/``reduction_factor``
    of each rung kept (at least one), a dominated trial outside them stopped."""

    min_epochs: int = 1
    reduction_factor: int = 3
    bootstrap_count: int = 0  # other trials a rung needs before it stops anyone

    def __post_init__(self) -> None:
        if self.min_epochs < 1 or self.reduction_factor < 2 or self.bootstrap_count < 0:
            raise ValueError(f"min_epochs >= 1, reduction_factor >= 2 and bootstrap_count >= 0 are needed, got "
                             f"{self.min_epochs}, {self.reduction_factor}, {self.bootstrap_count}")

    def rungs(self, max_epochs: int) -> list[int]:
        """The rung epochs of a trial of ``max_epochs``: before its last epoch, where stopping saves nothing."""
        out, epoch = [], self.min_epochs
        while epoch < max_epochs:
            out.append(epoch)
            epoch *= self.reduction_factor
        return out

    def keep_count(self, n: int) -> int:
        """How many of ``n`` trials at a rung go on: ``ceil(n / reduction_factor)``, at least one."""
        return max(1, math.ceil(n / self.reduction_factor))

    def decide(self, epoch: int, mine: Point, others: Sequence[Point]) -> str | None:
        """None to go on, or why the trial at ``mine`` stops at rung ``epoch`` among ``others``.

        A NaN accuracy counts as the worst accuracy and a NaN cost as the worst cost.
        """
        if len(others) < self.bootstrap_count:
            return None
        me = _clean(mine)
        rest = [_clean(p) for p in others]
        dominating = sum(_dominates(p, me) for p in rest)
        n = len(rest) + 1
        keep = self.keep_count(n)
        if dominating == 0:
            return None
        # every trial dominating this one ranks before it, whatever the order inside a front
        if dominating < keep and _position(me, rest) < keep:
            return None
        return (f"MO successive halving: at rung epoch {epoch} (val_acc {mine[0]:.4f}, cost {mine[1]:.4g}) "
                f"dominated by {dominating} of the {n} trials there, which keep their first {keep} "
                f"(1/{self.reduction_factor})")


def _clean(point: Point) -> Point:
    acc, cost = float(point[0]), float(point[1])
    return (-math.inf if math.isnan(acc) else acc, math.inf if math.isnan(cost) else cost)


def _dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on both and better on one (accuracy up, cost down)."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def _position(me: Point, rest: list[Point]) -> int:
    """This trial's place (0 = first) when the rung is ranked by front, then crowding distance; equal
    places go to this trial first, so a tie never stops it."""
    points = [me, *rest]
    fronts = _fronts(points)
    mine = next(f for f, members in enumerate(fronts) if 0 in members)
    ahead = sum(len(members) for members in fronts[:mine])
    front = fronts[mine]
    crowding = _crowding([points[i] for i in front])
    # a copy of this trial's point may have taken the end of the front (infinite distance) it shares
    own = max(c for i, c in zip(front, crowding) if points[i] == me)
    return ahead + sum(1 for i, c in zip(front, crowding) if points[i] != me and c > own)


def _fronts(points: list[Point]) -> list[list[int]]:
    """Non-dominated sorting (Deb et al.): indices of ``points`` per front, the first front first."""
    beaten_by = [0] * len(points)
    beats: list[list[int]] = [[] for _ in points]
    for i, a in enumerate(points):
        for j in range(i + 1, len(points)):
            if _dominates(a, points[j]):
                beats[i].append(j)
                beaten_by[j] += 1
            elif _dominates(points[j], a):
                beats[j].append(i)
                beaten_by[i] += 1
    fronts, current = [], [i for i, n in enumerate(beaten_by) if n == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in beats[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def _crowding(front: list[Point]) -> list[float]:
    """Crowding distance (NSGA-II) of each point of one front: its ends are infinite."""
    distance = [0.0] * len(front)
    for axis in (0, 1):
        order = sorted(range(len(front)), key=lambda i: front[i][axis])
        low, high = front[order[0]][axis], front[order[-1]][axis]
        distance[order[0]] = distance[order[-1]] = math.inf
        span = high - low
        if not (math.isfinite(span) and span > 0):
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distance[here] += (front[after][axis] - front[before][axis]) / span
    return distance


def rung_attr(epoch: int) -> str:
    """The Optuna user attribute holding a trial's point at rung ``epoch``."""
    return RUNG_ATTR.format(epoch=epoch)


def record_rung(trial: optuna.Trial, epoch: int, acc: float, cost: float) -> None:
    """Store this trial's point at rung ``epoch``, for the trials that reach the rung after it."""
    trial.set_user_attr(rung_attr(epoch), [float(acc), float(cost)])


def rung_records(study: optuna.Study, epoch: int, *, exclude: int | None = None,
                 states: Iterable[TrialState] = RUNG_STATES) -> list[Point]:
    """The points recorded at rung ``epoch`` by the study's trials in ``states``, less trial number ``exclude``."""
    key = rung_attr(epoch)
    out: list[Point] = []
    for trial in study.get_trials(deepcopy=False, states=tuple(states)):
        value = trial.user_attrs.get(key)
        if trial.number != exclude and isinstance(value, (list, tuple)) and len(value) == 2:
            out.append((float(value[0]), float(value[1])))
    return out


def check_rung(rule: MOSuccessiveHalving, trial: optuna.Trial, epoch: int, *, max_epochs: int,
               acc: float, cost: float) -> str | None:
    """At a rung epoch: record this trial's point, then ``rule.decide`` against the others there.
    None (go on) at any other epoch."""
    if epoch not in rule.rungs(max_epochs):
        return None
    record_rung(trial, epoch, acc, cost)
    return rule.decide(epoch, (acc, cost), rung_records(trial.study, epoch, exclude=trial.number))


def hypervolume_2d(points: Iterable[Point], reference: Point) -> float:
    """Area dominated by ``points`` (accuracy maximised, cost minimised) and bounded by ``reference``
    (a worst accuracy and a worst cost). Points not better than the reference on both, or with a NaN,
    add nothing. O(n log n)."""
    ref_acc, ref_cost = float(reference[0]), float(reference[1])
    kept = sorted((float(c), -float(a)) for a, c in points
                  if not (math.isnan(a) or math.isnan(c)) and a > ref_acc and c < ref_cost)
    area, best = 0.0, ref_acc
    for cost, neg_acc in kept:  # cheapest first: each point adds the strip of accuracy it gains
        if -neg_acc > best:
            area += (ref_cost - cost) * (-neg_acc - best)
            best = -neg_acc
    return area


__all__ = [
    "RUNG_ATTR",
    "RUNG_STATES",
    "MOSuccessiveHalving",
    "Point",
    "check_rung",
    "hypervolume_2d",
    "record_rung",
    "rung_attr",
    "rung_records",
]
