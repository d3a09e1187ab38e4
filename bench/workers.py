"""Probe trials per minute with 1 worker and with N workers on this machine, side by side.

Each round runs the same probe study (frozen backbones: cached features,
short trials) in fresh folders with ``tl-bench run --workers 1`` and
``--workers N``, alternating which goes first. Throughput is the number of
finished trials over the time from the first trial's start to the last one's
end, read back from the Optuna storage (start-up and summaries excluded);
the wall time of each whole command is reported too. On a machine with GPUs,
``--devices`` spreads the N workers over them.

    python bench/workers.py [--rounds 3] [--trials 24] [--workers 2] [--devices 0,1]
    python bench/workers.py --smoke    # 1 round of 4 one-epoch trials on 128 images: proves it runs

Last line: one JSON object (benchmark, ratio, target and the figures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPEC = {
    "name": "bench_workers",
    "datasets": [{"name": "digits", "img_size": 32, "train_size": 800, "val_size": 200}],
    "space": {
        "backbones": ["test_resnet", "test_convnext"],
        "freeze_depth": ["all"],
        "neck": ["gap", "gem"],
        "head": ["linear", "mlp"],
        "lr": {"low": 1.0e-3, "high": 1.0e-1, "log": True},
    },
    "fixed": {"epochs": 10, "batch_size": 64},
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
    "budget": {"n_trials": 24},  # --trials overrides it
    "keep_models": "none",  # throughput of trials, not of model logging
}
SMOKE_DATA = {"name": "digits", "img_size": 32, "train_size": 128, "val_size": 64}


def _study(folder: Path, spec_data: dict, *, workers: int, trials: int, devices: str | None) -> dict[str, float]:
    import optuna
    from optuna.trial import TrialState

    spec = folder / "bench.yaml"
    spec.write_text(yaml.safe_dump(spec_data))
    cmd = [sys.executable, "-m", "tl_bench", "run", str(spec), "--n-trials", str(trials), "--workers", str(workers),
           "--quiet"] + (["--devices", devices] if devices else [])
    start = time.perf_counter()
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name="bench_workers/digits", storage=f"sqlite:///{folder / 'runs' / 'optuna.db'}")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {"trials_per_min": 60 * len(done) / span, "span_s": span, "wall_s": wall, "complete": len(done)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--devices", default=None)
    parser.add_argument("--smoke", action="store_true", help="1 round, 4 trials of 1 epoch on 128 images")
    args = parser.parse_args()
    spec_data = SPEC
    if args.smoke:
        args.rounds, args.trials = 1, 4
        spec_data = {**SPEC, "datasets": [SMOKE_DATA], "fixed": {**SPEC["fixed"], "epochs": 1}}
    one: list[dict[str, float]] = []
    many: list[dict[str, float]] = []
    for r in range(args.rounds):
        order = [(1, one), (args.workers, many)]
        for workers, out in order if r % 2 == 0 else order[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                out.append(_study(Path(tmp), spec_data, workers=workers, trials=args.trials, devices=args.devices))
            print(f"round {r}: {workers} worker(s): {out[-1]}", flush=True)
    rate_one = statistics.median(x["trials_per_min"] for x in one)
    rate_many = statistics.median(x["trials_per_min"] for x in many)
    print(json.dumps({
        "benchmark": "workers",
        "ratio": round(rate_many / rate_one, 3),
        "target": "> 1 (N workers finish the same budget faster than one)",
        "workers": args.workers,
        "trials_per_min_1": round(rate_one, 1),
        f"trials_per_min_{args.workers}": round(rate_many, 1),
        "rounds_1": [round(x["trials_per_min"], 1) for x in one],
        f"rounds_{args.workers}": [round(x["trials_per_min"], 1) for x in many],
        "wall_s_1": [round(x["wall_s"], 1) for x in one],
        f"wall_s_{args.workers}": [round(x["wall_s"], 1) for x in many],
        "smoke": args.smoke,
    }))


if __name__ == "__main__":
    main()
