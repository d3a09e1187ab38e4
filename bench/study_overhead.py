"""Framework overhead of cheap trials against the floor of the stores themselves, side by side.

A probe study (digits, test_resnet and test_convnext fully frozen on cached features, gap neck,
linear head, 5 to 10 epochs, TPE) runs through ``tl-bench run``. For each trial, its overhead is
the time from its start to the next trial's start less what it spent training, evaluating and
setting up (its ``train_time_s``, ``eval_time_s`` and ``setup_time_s``; on a cache hit less the
feature passes it was charged but did not run). The floor is measured in the same run: bare
Optuna ask/tell on a fresh storage of the same kind, with the same sampler and distributions, plus
one MLflow run holding the same params, metrics (curves included) and tags, no training.

Also measured: start-up of ``tl-bench run`` to its first trial, in a fresh folder (the stores are
created on the way) and topping the same study up by one trial, against a fresh interpreter that
imports torch, timm, MLflow and Optuna and creates (or opens) the same two stores; growth, the
overhead at the last tenth of a longer study against its first tenth (TPE and the storage read
every past trial); and that study's leaderboard against MLflow's own ``search_runs`` of its runs.

    python bench/study_overhead.py            # 100-trial overhead study, 1,000-trial growth study
    python bench/study_overhead.py --quick    # 30 and 100 trials, about a minute on an idle machine
    python bench/study_overhead.py --smoke    # 4 trials on 128 images, also the growth study: proves it runs

Last line: one JSON object (benchmark, ratio, target and the figures).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

NAME = "bench_overhead"
SPEC = {
    "name": NAME,
    "datasets": [{"name": "digits", "img_size": 32, "train_size": 800, "val_size": 200, "split_seed": 0}],
    "space": {
        "backbones": ["test_resnet", "test_convnext"],
        "freeze_depth": ["all"],
        "neck": ["gap"],
        "head": ["linear"],
        "lr": {"low": 1.0e-3, "high": 1.0e-1, "log": True},
        "epochs": {"low": 5, "high": 10},
    },
    "fixed": {"batch_size": 64},
    "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 10},
    "pruner": {"name": "none"},
    "budget": {"n_trials": 100},  # --trials overrides it
    "keep_models": "none",  # the cost of the framework around a trial, not of logging models
}
SMOKE = {**SPEC, "datasets": [{**SPEC["datasets"][0], "train_size": 128, "val_size": 64}],
         "space": {**SPEC["space"], "epochs": {"low": 1, "high": 2}}}
IMPORTS = "import torch, timm, mlflow, optuna"
# A fresh interpreter that imports them and opens (creating when new) both stores of a study in the cwd.
STORES = (IMPORTS + "; import sys; from mlflow.tracking import MlflowClient; "
          "MlflowClient('sqlite:///runs/mlflow.db').search_experiments(); "
          "optuna.logging.set_verbosity(optuna.logging.WARNING); "
          "optuna.create_study(storage='sqlite:///runs/optuna.db', study_name='floor', load_if_exists=True)")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def import_floor(repeats: int) -> float:
    """Seconds a fresh interpreter takes to import torch, timm, MLflow and Optuna (median)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], check=True)
        times.append(time.perf_counter() - start)
    return _median(times)


def store_floor(folder: Path, repeats: int) -> tuple[float, float]:
    """Seconds a fresh interpreter takes to import them and create both stores in an empty folder,
    then to import them and open the stores it made (medians): the floors of the two start-ups."""
    fresh, again = [], []
    for index in range(repeats):
        work = folder / f"stores-{index}"
        (work / "runs").mkdir(parents=True)
        for times in (fresh, again):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", STORES], cwd=work, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return _median(fresh), _median(again)


def run_study(folder: Path, trials: int, spec_data: dict = SPEC) -> dict:
    """``tl-bench run`` of the probe study in ``folder``: the start-up and each trial's overhead."""
    folder.mkdir(parents=True)
    spec = folder / "bench.yaml"
    spec.write_text(yaml.safe_dump({**spec_data, "budget": {"n_trials": trials}}))
    launched = dt.datetime.now()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tl_bench", "run", str(spec), "--quiet"], cwd=folder, check=True)
    command_s = time.perf_counter() - start
    trials_, records = _trials(folder), _records(folder / "runs" / "mlflow.db")
    fills = _fills(folder / "runs" / "cache")
    overhead = []
    for this, after in zip(trials_, trials_[1:]):
        m = records[this["number"]]["metrics"]
        work = m["train_time_s"] + m["eval_time_s"] + m["setup_time_s"]
        if m.get("cache_hit"):  # charged the recorded feature passes, which this trial did not run
            work -= fills[records[this["number"]]["params"]["backbone"]]
        overhead.append((after["start"] - this["start"]).total_seconds() - work)
    return {
        "startup_s": (trials_[0]["start"] - launched).total_seconds(),
        "command_s": command_s,
        "overhead_s": overhead,
        "train_s": [records[t["number"]]["metrics"]["train_time_s"] for t in trials_],
        "trials": trials_,
        "records": records,
        "tracking_uri": f"sqlite:///{folder / 'runs' / 'mlflow.db'}",
    }


def topup_startup(folder: Path, trials: int) -> float:
    """Start-up of ``tl-bench run`` on stores that exist: the same study topped up by one trial."""
    launched = dt.datetime.now()
    cmd = [sys.executable, "-m", "tl_bench", "run", str(folder / "bench.yaml"), "--quiet",
           "--n-trials", str(trials + 1)]
    subprocess.run(cmd, cwd=folder, check=True)
    return (_trials(folder)[-1]["start"] - launched).total_seconds()


def _trials(folder: Path) -> list[dict]:
    import optuna

    storage = f"sqlite:///{folder / 'runs' / 'optuna.db'}"
    study = optuna.load_study(study_name=f"{NAME}/digits", storage=storage)
    return [{"number": t.number, "start": t.datetime_start, "distributions": t.distributions, "value": t.value}
            for t in study.trials if t.state.is_finished()]


def _records(db: Path) -> dict[int, dict]:
    """Each trial run's params, tags, latest metrics and every metric row, read straight from the store."""
    con = sqlite3.connect(db)
    runs: dict[str, dict] = defaultdict(lambda: {"params": {}, "tags": {}, "metrics": {}, "rows": []})
    for run, key, value in con.execute("select run_uuid, key, value from params"):
        runs[run]["params"][key] = value
    for run, key, value in con.execute("select run_uuid, key, value from tags"):
        runs[run]["tags"][key] = value
    for run, key, value, step in con.execute("select run_uuid, key, value, step from metrics"):
        runs[run]["rows"].append((key, value, step))
        runs[run]["metrics"][key] = value
    con.close()
    return {int(r["tags"]["tlb.trial"]): r for r in runs.values() if r["tags"].get("tlb.kind") == "trial"}


def _fills(cache: Path) -> dict[str, float]:
    """Seconds of the recorded feature passes (every split) per backbone, from the cache entries."""
    from safetensors import safe_open

    out: dict[str, float] = defaultdict(float)
    for path in cache.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
        out[json.loads(meta["backbone"])] += json.loads(meta["fill_cost"])["seconds"]
    return out


def run_floor(folder: Path, study: dict) -> list[float]:
    """Seconds per trial of bare ask/tell plus one MLflow run holding what the real trial's run holds."""
    import optuna
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=SPEC["sampler"]["seed"], n_startup_trials=10)
    bare = optuna.create_study(storage=f"sqlite:///{folder / 'optuna.db'}", study_name=f"{NAME}/digits",
                               direction="maximize", sampler=sampler)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.create_experiment(NAME)
    parent = client.create_run(experiment, run_name="digits").info.run_id
    times = []
    for trial in study["trials"]:
        record = study["records"][trial["number"]]
        tags = {k: v for k, v in record["tags"].items() if not k.startswith("mlflow.")}
        tags["mlflow.parentRunId"] = parent
        start = time.perf_counter()
        asked = bare.ask(trial["distributions"])
        run_id = client.create_run(experiment, run_name=record["tags"].get("mlflow.runName"), tags=tags).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, s) for k, v, s in record["rows"]],
                         params=[Param(k, v) for k, v in record["params"].items()])
        client.set_terminated(run_id)
        bare.tell(asked, trial["value"])
        times.append(time.perf_counter() - start)
    return times


def time_leaderboard(tracking_uri: str, repeats: int) -> tuple[float, float]:
    """The leaderboard of the study against its floor, MLflow's own ``search_runs`` of the same trial
    runs into a frame (medians, alternating which goes first)."""
    import mlflow

    from tl_bench.report import leaderboard

    def board() -> None:
        leaderboard(tracking_uri, study=NAME)

    def floor() -> None:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.search_runs(experiment_names=[NAME], filter_string="tags.`tlb.kind` = 'trial'", max_results=50_000)

    times: dict[str, list[float]] = {"board": [], "floor": []}
    for index in range(repeats):
        for name, fn in (("board", board), ("floor", floor))[:: 1 if index % 2 == 0 else -1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return _median(times["board"]), _median(times["floor"])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 trials, 100 for growth")
    parser.add_argument("--trials", type=int, default=None, help="trials of the overhead study (100)")
    parser.add_argument("--growth-trials", type=int, default=None, help="trials of the growth study (1000)")
    parser.add_argument("--smoke", action="store_true",
                        help="4 trials on 128 images, that study also the growth study, 1 repeat: proves it runs")
    args = parser.parse_args()
    trials = args.trials or (4 if args.smoke else 30 if args.quick else 100)
    growth_trials = trials if args.smoke else args.growth_trials or (100 if args.quick else 1000)
    repeats = 1 if args.quick or args.smoke else 3
    spec_data = SMOKE if args.smoke else SPEC
    root = Path(tempfile.mkdtemp(prefix="tlb-bench-overhead-"))

    imports_s = import_floor(repeats)
    fresh_floor_s, topup_floor_s = store_floor(root / "floor-stores", repeats)
    study = run_study(root / "study", trials, spec_data)
    floor = run_floor(root / "floor", study)
    topup_s = topup_startup(root / "study", trials)
    if args.smoke:  # one study serves both: its first and last trial stand for the tenths
        growth, growth_floor = study, floor
    else:
        growth = run_study(root / "growth", growth_trials, spec_data)
        growth_floor = run_floor(root / "growth-floor", growth)
    board_s, board_floor_s = time_leaderboard(growth["tracking_uri"], 1 if args.smoke else max(repeats, 3))

    tenth = max(growth_trials // 10, 1)
    overhead, floor_s = _median(study["overhead_s"]), _median(floor[:-1])
    first, last = _median(growth["overhead_s"][:tenth]), _median(growth["overhead_s"][-tenth:])
    floor_first, floor_last = _median(growth_floor[:tenth]), _median(growth_floor[-tenth:])
    rows = [
        ("overhead per trial (median)", f"{_ms(overhead)} ms", f"floor {_ms(floor_s)} ms", overhead / floor_s,
         "<= 1.5x and <= 50 ms"),
        ("start-up of tl-bench run to trial 0", f"{study['startup_s']:.2f} s",
         f"stores floor {fresh_floor_s:.2f} s", study["startup_s"] / fresh_floor_s, "< 4 s"),
        ("start-up, stores already there (top-up)", f"{topup_s:.2f} s", f"stores floor {topup_floor_s:.2f} s",
         topup_s / topup_floor_s, "< 4 s"),
        (f"growth: trials {growth_trials - tenth}-{growth_trials} vs 0-{tenth}", f"{_ms(last)} ms",
         f"{_ms(first)} ms", last / first, "<= 2x"),
        ("growth of the floor", f"{_ms(floor_last)} ms", f"{_ms(floor_first)} ms", floor_last / floor_first, ""),
        (f"leaderboard of the {growth_trials}-trial study", f"{board_s:.2f} s", f"search_runs {board_floor_s:.2f} s",
         board_s / board_floor_s, "< 2 s"),
    ]
    for label, ours, theirs, ratio, target in rows:
        print(f"{label:<44} {ours:>11} {theirs:>18}  ratio {ratio:6.2f}  target {target}", file=sys.stderr)
    print(f"median training per trial {_median(study['train_s']) * 1000:.0f} ms; "
          f"whole command {study['command_s']:.1f} s for {trials} trials", file=sys.stderr)
    result = {
        "benchmark": "study_overhead",
        "ratio": round(overhead / floor_s, 3),
        "target": "<= 1.5 (and <= 50 ms per trial)",
        "meets_target": overhead / floor_s <= 1.5 and overhead <= 0.05,
        "overhead_ms": _ms(overhead),
        "floor_ms": _ms(floor_s),
        "train_ms_median": _ms(_median(study["train_s"])),
        "trials": trials,
        "startup_s": round(study["startup_s"], 3),
        "imports_floor_s": round(imports_s, 3),
        "startup_floor_s": round(fresh_floor_s, 3),
        "startup_topup_floor_s": round(topup_floor_s, 3),
        "startup_topup_s": round(topup_s, 3),
        "meets_startup_target": study["startup_s"] < 4,
        "growth_trials": growth_trials,
        "growth_first_ms": _ms(first),
        "growth_last_ms": _ms(last),
        "growth_ratio": round(last / first, 3),
        "floor_growth_ratio": round(floor_last / floor_first, 3),
        "meets_growth_target": last / first <= 2,
        "leaderboard_s": round(board_s, 3),
        "leaderboard_floor_s": round(board_floor_s, 3),
        "meets_leaderboard_target": board_s < 2,
        "smoke": args.smoke,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
