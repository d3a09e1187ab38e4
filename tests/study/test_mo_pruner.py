"""Multi-objective successive halving: rung epochs, who is stopped at a rung (and who never is),
rung records kept on real Optuna trials, and the 2-d hypervolume a benchmark scores fronts with."""

from __future__ import annotations

import math
import random
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tl_bench.study.mo_pruner import (
    MOSuccessiveHalving,
    check_rung,
    hypervolume_2d,
    record_rung,
    rung_attr,
    rung_records,
)


@pytest.mark.parametrize(("min_epochs", "eta", "max_epochs", "rungs"), [
    (1, 3, 10, [1, 3, 9]),
    (1, 3, 9, [1, 3]),  # never at the last epoch: stopping there saves nothing
    (2, 2, 16, [2, 4, 8]),
    (1, 2, 1, []),
    (5, 3, 4, []),
])
def test_rungs_are_min_epochs_times_powers_of_the_reduction_factor(
    min_epochs: int, eta: int, max_epochs: int, rungs: list[int]
) -> None:
    assert MOSuccessiveHalving(min_epochs, eta).rungs(max_epochs) == rungs


def test_the_keep_count_is_a_ceiling_share_and_never_zero() -> None:
    rule = MOSuccessiveHalving(1, 3)
    assert [rule.keep_count(n) for n in range(1, 8)] == [1, 1, 1, 2, 2, 2, 3]


@pytest.mark.parametrize("bad", [(0, 3, 0), (1, 1, 0), (1, 3, -1)])
def test_impossible_settings_are_refused(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        MOSuccessiveHalving(*bad)


def test_a_dominated_trial_is_stopped_with_the_rung_the_count_and_the_keep() -> None:
    rule = MOSuccessiveHalving(1, 3)
    reason = rule.decide(3, (0.5, 10.0), [(0.9, 5.0), (0.6, 8.0), (0.4, 1.0)])
    assert reason is not None
    assert "rung epoch 3" in reason and "dominated by 2 of the 4 trials" in reason and "first 2 (1/3)" in reason


def test_the_first_trial_at_a_rung_and_a_bootstrapping_rung_go_on() -> None:
    assert MOSuccessiveHalving(1, 3).decide(1, (0.1, 99.0), []) is None
    waiting = MOSuccessiveHalving(1, 3, bootstrap_count=2)
    assert waiting.decide(1, (0.1, 99.0), [(0.9, 1.0)]) is None
    assert waiting.decide(1, (0.1, 99.0), [(0.9, 1.0), (0.8, 2.0)]) is not None


def test_a_trial_on_the_front_is_never_stopped_however_crowded() -> None:
    rule = MOSuccessiveHalving(1, 4)
    # 20 trials better on accuracy, 20 cheaper: the front's one cheap-and-accurate corner is none of them
    others = [(0.9 + i / 1000, 50.0 + i) for i in range(20)] + [(0.1 + i / 100, 0.5 - i / 100) for i in range(20)]
    assert rule.decide(2, (0.5, 5.0), others) is None
    assert rule.decide(2, (0.5, 5.0), [(0.5, 5.0)] * 30) is None  # copies of itself do not dominate it


def test_inside_its_front_the_crowding_distance_decides() -> None:
    rule = MOSuccessiveHalving(1, 2)
    leader = (0.9, 1.0)
    # a second front, each point dominated by the leader alone: more accurate ones cost more
    low, middle, high = (0.6, 2.0), (0.7, 3.0), (0.8, 4.0)
    # four at the rung keep two: the leader and an end of the second front (an end spreads it widest)
    reason = rule.decide(1, middle, [leader, low, high])
    assert reason is not None and "dominated by 1 of the 4" in reason
    assert rule.decide(1, low, [leader, middle, high]) is None
    assert rule.decide(1, high, [leader, low, middle]) is None
    # eight keep four: the middle goes on too
    assert rule.decide(1, middle, [leader, low, high, (0.1, 9.0), (0.2, 9.5), (0.3, 9.9), (0.05, 9.9)]) is None


def test_a_nan_accuracy_is_the_worst_accuracy() -> None:
    rule = MOSuccessiveHalving(1, 3)
    assert rule.decide(1, (math.nan, 3.0), [(0.5, 2.0)]) is not None
    assert rule.decide(1, (math.nan, 1.0), [(0.5, 2.0)]) is None  # the cheapest stays: nothing dominates it
    assert rule.decide(1, (0.5, math.nan), [(0.5, 2.0)]) is not None


@pytest.mark.parametrize("seed", range(25))
def test_at_a_full_rung_at_least_the_top_share_and_the_whole_front_go_on(seed: int) -> None:
    rng = random.Random(seed)
    eta = rng.choice([2, 3, 4])
    rule = MOSuccessiveHalving(1, eta)
    points = [(round(rng.random(), 2), round(rng.random() * 10, 1)) for _ in range(rng.randint(2, 30))]
    kept = [i for i, p in enumerate(points) if rule.decide(1, p, points[:i] + points[i + 1:]) is None]
    front = [i for i, p in enumerate(points)
             if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)]
    assert set(front) <= set(kept)
    assert len(kept) >= rule.keep_count(len(points))
    for i, p in enumerate(points):
        if i not in kept:
            assert any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)  # only dominated ones stop


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="mo/digits",
                               directions=["maximize", "minimize"])


def test_rung_records_come_back_from_the_storage_for_running_complete_and_pruned_trials(
    study: optuna.Study, tmp_path: Path
) -> None:
    for state, acc, cost in [
        (TrialState.COMPLETE, 0.9, 5.0),
        (TrialState.PRUNED, 0.6, 6.0),  # stopped at a later rung: it still reached this one
        (TrialState.FAIL, 0.99, 0.1),  # a failed trial's point is not a result
        (TrialState.RUNNING, 0.7, 2.0),
    ]:
        trial = study.ask()
        record_rung(trial, 3, acc, cost)
        record_rung(trial, 1, acc / 2, cost / 2)
        if state == TrialState.COMPLETE:
            study.tell(trial, [acc, cost])
        elif state != TrialState.RUNNING:
            study.tell(trial, state=state)
    unrecorded = study.ask()  # running, not at the rung yet
    assert unrecorded.user_attrs.get(rung_attr(3)) is None
    again = optuna.load_study(study_name="mo/digits", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sorted(rung_records(again, 3)) == [(0.6, 6.0), (0.7, 2.0), (0.9, 5.0)]
    assert sorted(rung_records(again, 3, exclude=3)) == [(0.6, 6.0), (0.9, 5.0)]
    assert sorted(rung_records(again, 1, exclude=0)) == [(0.3, 3.0), (0.35, 1.0)]
    assert rung_records(again, 9) == []


def test_check_rung_records_then_stops_the_dominated_and_lets_the_front_go_on(study: optuna.Study) -> None:
    rule = MOSuccessiveHalving(1, 3)
    leaders = []
    for acc, cost in [(0.9, 3.0), (0.8, 1.0)]:
        trial = study.ask()
        assert check_rung(rule, trial, 3, max_epochs=9, acc=acc, cost=cost) is None
        leaders.append(trial)
    study.tell(leaders[0], [0.95, 9.0])  # complete now; its rung record still counts
    weak = study.ask()
    assert check_rung(rule, weak, 2, max_epochs=9, acc=0.1, cost=9.0) is None  # not a rung epoch
    assert rung_attr(2) not in weak.user_attrs
    reason = check_rung(rule, weak, 3, max_epochs=9, acc=0.5, cost=4.0)
    assert reason is not None and "dominated by 2 of the 3 trials" in reason
    assert weak.study.trials[weak.number].user_attrs[rung_attr(3)] == [0.5, 4.0]
    cheap = study.ask()
    assert check_rung(rule, cheap, 3, max_epochs=9, acc=0.2, cost=0.5) is None  # cheapest: on the front
    # the last epoch is no rung: nothing recorded, nothing stopped
    assert check_rung(rule, study.ask(), 9, max_epochs=9, acc=0.0, cost=99.0) is None


def test_hypervolume_matches_a_hand_computation() -> None:
    points = [(0.9, 4.0), (0.7, 2.0), (0.5, 1.0), (0.6, 3.0), (math.nan, 0.5), (0.95, 12.0), (-0.1, 1.0)]
    # staircase from the cheapest: 9 x 0.5 + 8 x 0.2 + 6 x 0.2; (0.6, 3) is dominated by (0.7, 2);
    # NaN, beyond the reference cost and below the reference accuracy add nothing
    assert hypervolume_2d(points, (0.0, 10.0)) == pytest.approx(4.5 + 1.6 + 1.2)
    assert hypervolume_2d([(0.5, 2.0)], (0.1, 4.0)) == pytest.approx(0.4 * 2.0)
    assert hypervolume_2d([(0.5, 2.0), (0.5, 2.0)], (0.1, 4.0)) == pytest.approx(0.8)  # a copy adds nothing
    assert hypervolume_2d([], (0.0, 1.0)) == 0.0
    assert hypervolume_2d([(0.5, 2.0)], (0.5, 4.0)) == 0.0  # on the reference: no area


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_agrees_with_counting_cells_of_a_grid(seed: int) -> None:
    rng = random.Random(seed)
    points = [(rng.randint(1, 9) / 10, float(rng.randint(0, 9))) for _ in range(8)]
    cells = sum(1 for a in range(10) for c in range(10)  # unit cells [a/10, (a+1)/10] x [c, c+1]
                if any(p[0] >= (a + 1) / 10 - 1e-9 and p[1] <= c for p in points))
    assert hypervolume_2d(points, (0.0, 10.0)) == pytest.approx(cells * 0.1)
