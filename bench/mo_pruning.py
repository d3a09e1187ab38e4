"""Multi-objective pruning: the same accuracy-against-cost study with and without ``pruner: mo_asha``.

Each sampler seed is one round: the study (``objective.cost: train_time_s``, multi-objective TPE
seeded alike, the same trial budget, three tiny backbones from scratch at freeze depth 0 or all,
lr searched) runs twice as fresh ``tl-bench run`` processes, once with tl-bench's multi-objective
successive halving (``min_epochs 1, reduction_factor 3``) and once without a pruner; the order of
the two alternates between rounds. Printed per round: each run's wall time, the hypervolume of
its complete trials' front of (validation accuracy, train_time_s), both against one reference
point (accuracy 0, and 1.05 x the slowest complete trial of either run), and the two ratios:
hypervolume pruned / unpruned (target >= 0.95) and wall time pruned / unpruned (target <= 0.60);
beside it, the wall-time ratio without each run's start-up (launch to its first trial: interpreter,
imports and stores, which both pay and no pruner can save).

    python bench/mo_pruning.py [--seeds 0 1 2] [--trials 24] [--epochs 6]
    python bench/mo_pruning.py --smoke    # tiny data, 4 trials, one seed

Last line: one JSON object (benchmark, ratio: the median wall-time ratio, the hypervolume ratios).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import yaml

from tl_bench.study.mo_pruner import hypervolume_2d


def study_file(folder: Path, *, seed: int, trials: int, epochs: int, pruned: bool, smoke: bool) -> Path:
    data: dict[str, Any] = {
        "name": "mo",
        "datasets": [{"name": "digits", "img_size": 32, "train_size": 100 if smoke else 800,
                      "val_size": 50 if smoke else 200}],
        "space": {"backbones": ["test_resnet", "test_convnext", "test_vit"], "freeze_depth": [0, "all"],
                  "lr": {"low": 1.0e-4, "high": 3.0e-2, "log": True}},
        "fixed": {"epochs": epochs, "batch_size": 64, "backbone_lr_scale": 1.0},
        "objective": {"metric": "val_acc", "cost": "train_time_s"},
        "sampler": {"name": "tpe", "seed": seed, "n_startup_trials": min(8, trials)},
        "pruner": {"name": "mo_asha", "min_epochs": 1, "reduction_factor": 3} if pruned else {"name": "none"},
        "budget": {"n_trials": trials},
        "keep_models": "none",
    }
    path = folder / "mo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_once(seed: int, args: argparse.Namespace, pruned: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = study_file(Path(tmp), seed=seed, trials=args.trials, epochs=args.epochs, pruned=pruned,
                          smoke=args.smoke)
        launched = datetime.datetime.now()
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tl_bench", "run", str(spec)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"tl-bench run failed: {done.stderr[-2000:]}")
        study = optuna.load_study(study_name="mo/digits", storage=f"sqlite:///{tmp}/runs/optuna.db")
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        pruned_n = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        points = [(float(t.values[0]), float(t.values[1])) for t in complete]
        # launch to the first trial's start: interpreter, imports, stores; no pruner can save it
        startup = (min(t.datetime_start for t in study.trials) - launched).total_seconds()
    return {"wall_s": wall, "points": points, "complete": len(complete), "pruned": pruned_n, "startup_s": startup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.trials, args.epochs = [0], 4, 3
    rounds = []
    for index, seed in enumerate(args.seeds):
        order = [True, False] if index % 2 == 0 else [False, True]
        runs = {pruned: run_once(seed, args, pruned) for pruned in order}
        reference = (0.0, 1.05 * max(c for r in runs.values() for _, c in r["points"]))
        hv = {pruned: hypervolume_2d(r["points"], reference) for pruned, r in runs.items()}
        row = {
            "seed": seed, "reference": reference,
            "wall_s": {"mo_asha": runs[True]["wall_s"], "none": runs[False]["wall_s"]},
            "hypervolume": {"mo_asha": hv[True], "none": hv[False]},
            "trials": {"mo_asha": [runs[True]["complete"], runs[True]["pruned"]], "none": [runs[False]["complete"], 0]},
            "hv_ratio": hv[True] / hv[False] if hv[False] > 0 else None,
            "wall_ratio": runs[True]["wall_s"] / runs[False]["wall_s"],
            "startup_s": {"mo_asha": runs[True]["startup_s"], "none": runs[False]["startup_s"]},
            # the same ratio without the start-up both pay alike: what the pruner acts on
            "search_ratio": (runs[True]["wall_s"] - runs[True]["startup_s"])
            / (runs[False]["wall_s"] - runs[False]["startup_s"]),
        }
        rounds.append(row)
        print(f"seed {seed}: wall {row['wall_s']['mo_asha']:.1f} s pruned / {row['wall_s']['none']:.1f} s unpruned "
              f"= {row['wall_ratio']:.3f}; hypervolume ratio {row['hv_ratio']}; reference (0, {reference[1]:.2f} s); "
              f"pruned run: {runs[True]['complete']} complete, {runs[True]['pruned']} pruned; without the start-up "
              f"({row['startup_s']['mo_asha']:.1f} s / {row['startup_s']['none']:.1f} s) {row['search_ratio']:.3f}",
              flush=True)
    walls = [r["wall_ratio"] for r in rounds]
    hvs = [r["hv_ratio"] for r in rounds if r["hv_ratio"] is not None]
    print(json.dumps({
        "benchmark": "mo_pruning", "smoke": args.smoke,
        "target": "hypervolume ratio >= 0.95 in wall-time ratio <= 0.60 (pruned / unpruned)",
        "ratio": statistics.median(walls), "ratio_min": min(walls), "ratio_max": max(walls),
        "hv_ratio_median": statistics.median(hvs) if hvs else None, "hv_ratios": hvs,
        "search_ratio_median": statistics.median(r["search_ratio"] for r in rounds), "rounds": rounds,
    }))


if __name__ == "__main__":
    main()
