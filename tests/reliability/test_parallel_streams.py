"""Each process on a study draws from a sampler stream of its own, however the storage was named: two
``tl-bench run`` on one study, workers on a storage written in the study file, and a top-up never propose
the same configurations, while a fresh run with a seed is reproduced by the same seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.study.samplers import SAMPLER_SEED_ATTR, make_sampler

from reliability_support import Processes, load_trials, spec_data, write_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sampled(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[Any, ...]]:
    """The configurations the sampler proposed (enqueued baselines left out), in trial order."""
    return [tuple(sorted(t.params.items())) for t in trials if "fixed_params" not in t.system_attrs]


@pytest.mark.slow
def test_two_runs_at_once_on_a_storage_named_in_the_study_file_draw_different_configurations(
    tmp_path: Path, mlflow_db: str, processes: Processes
) -> None:
    spec = write_spec(tmp_path, spec_data(storage="sqlite:///shared/optuna.db", budget={"n_trials": 4}))
    storage = f"sqlite:///{tmp_path / 'shared' / 'optuna.db'}"
    # Both stores exist already (mlflow_db): the two processes race for the study and its trials, not a schema.
    (tmp_path / "shared").mkdir()
    optuna.storages.RDBStorage(storage)
    procs = [processes.start(["run", spec.name, "--quiet"], cwd=tmp_path) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    trials = load_trials(storage)
    assert len(trials) >= 4 and {t.state.name for t in trials} == {"COMPLETE"}
    sampled = _sampled(trials)
    assert len(set(sampled)) == len(sampled), sampled  # was: the second process replayed the first's draws
    by_pid: dict[int, set[int]] = {}
    for trial in trials:
        by_pid.setdefault(trial.user_attrs["pid"], set()).add(trial.user_attrs[SAMPLER_SEED_ATTR])
    if len(by_pid) == 2:  # both ran trials: each with one seed of its own, the creator's the spec's own
        seeds = [next(iter(s)) for s in by_pid.values()]
        assert all(len(s) == 1 for s in by_pid.values()) and len(set(seeds)) == 2 and 0 in seeds


def test_a_top_up_draws_new_configurations_and_a_fresh_run_is_reproduced(tmp_path: Path, mlflow_template: Path) -> None:
    def study(folder: Path) -> Any:
        (folder / "runs").mkdir(parents=True)
        (folder / "runs" / "mlflow.db").write_bytes(mlflow_template.read_bytes())
        return load_spec(write_spec(folder, spec_data(budget={"n_trials": 2})))

    first, again = study(tmp_path / "a"), study(tmp_path / "b")
    run_spec(first, RunOptions(n_trials=1, summarize=False), quiet=True)
    run_spec(first, RunOptions(n_trials=3, summarize=False), quiet=True)  # a top-up: two more trials
    run_spec(again, RunOptions(n_trials=1, summarize=False), quiet=True)  # a fresh run with the same seed
    trials, fresh = load_trials(first.storage_url), load_trials(again.storage_url)
    sampled = _sampled(trials)
    assert len(sampled) == 3 and len(set(sampled)) == 3, sampled  # was: trial 1 repeated trial 0
    assert _sampled(fresh) == sampled[:1]  # the same seed draws the same first configuration
    seeds = [t.user_attrs[SAMPLER_SEED_ATTR] for t in trials]
    assert seeds[0] == 0 and seeds[1] == seeds[2] != 0  # the top-up's stream is on record


def test_grid_points_keep_their_order_in_every_stream(tmp_path: Path) -> None:
    """A grid's order comes from the spec's seed in every process, or two processes would name different
    points by one grid id and run some twice."""
    space = {"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"],
             "lr": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]}
    spec = load_spec(write_spec(tmp_path, spec_data(space=space, sampler={"name": "grid", "seed": 0})))
    grid = {"lr": spec.space.hyper["lr"].choices}
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(study_name="g", storage=storage, sampler=make_sampler(spec, grid_space=grid))
    second = optuna.load_study(study_name="g", storage=storage,
                               sampler=make_sampler(spec, grid_space=grid, seed_offset=3_141_592))
    drawn: list[float] = []
    for _ in range(4):  # the two workers ask at the same time, then tell
        asked = [(s, s.ask()) for s in (first, second)]
        for study_, trial in asked:
            drawn.append(trial.suggest_float("lr", 1e-4, 2e-2))
            try:
                study_.tell(trial, 0.0)
            except RuntimeError as err:  # the grid sampler stops the study after its last point
                assert "Study.stop" in str(err)
    assert sorted(drawn) == sorted(grid["lr"])  # every point once (was: some twice, others never)
