"""Cost of MLflow tracking: the same short study with tracking on and off, side by side.

Each round runs the study twice in fresh folders, once tracked and once not,
alternating which goes first; the ratio is median(tracked) / median(untracked)
of the wall time of the trials (the one-off creation of the MLflow store is
excluded and reported apart, as is the end-of-study summary).

    python bench/tracking.py [--rounds 8] [--trials 6]
    python bench/tracking.py --smoke    # 1 round of 1-trial studies on 128 images: proves it runs

Last line: one JSON object (benchmark, ratio, target and the figures).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPEC = {
    "name": "bench_tracking",
    "datasets": [{"name": "digits", "img_size": 32, "train_size": 800, "val_size": 200}],
    "space": {
        "backbones": ["test_resnet", "test_convnext"],
        "freeze_depth": [0, 2],
        "neck": ["gap", "gem"],
        "head": ["linear", "mlp"],
        "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
    },
    "fixed": {"epochs": 3, "batch_size": 64},
    "sampler": {"name": "random", "seed": 0},
    "budget": {"n_trials": 6},
}
SMOKE_DATA = {"name": "digits", "img_size": 32, "train_size": 128, "val_size": 64}


def _study(folder: Path, spec_data: dict, *, track: bool, trials: int, template: Path | None) -> dict[str, float]:
    from tl_bench.spec import load_spec
    from tl_bench.study import RunOptions, run_spec

    spec_path = folder / "bench.yaml"
    spec_path.write_text(yaml.safe_dump(spec_data))
    if track and template is not None:
        (folder / "runs").mkdir(exist_ok=True)
        shutil.copyfile(template, folder / "runs" / "mlflow.db")
    spec = load_spec(spec_path)
    start = time.perf_counter()
    run_spec(spec, RunOptions(n_trials=trials, track=track, summarize=False), quiet=True)
    study_s = time.perf_counter() - start
    summary_s = 0.0
    if track:
        from tl_bench.models import count_stages
        from tl_bench.report import log_study_dashboard
        from tl_bench.study import DatasetStudy, RunEnv
        from tl_bench.study.preflight import checkpoint_resolver
        from tl_bench.tracking import Tracker
        from tl_bench.train import train_config

        tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location)
        stages = {b.name: count_stages(b.name) for b in spec.space.backbones}
        env = RunEnv(spec, tracker, checkpoint_resolver(spec, tracker, pretrain=False), stages, train_config)
        start = time.perf_counter()
        DatasetStudy.open(env, spec.datasets[0]).end(log_study_dashboard)  # summary, plots and dashboard
        summary_s = time.perf_counter() - start
    return {"study_s": study_s, "summary_s": summary_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--smoke", action="store_true", help="1 round, 1 trial, 128 images, 1 epoch")
    args = parser.parse_args()
    spec_data = SPEC
    if args.smoke:
        args.rounds, args.trials = 1, 1
        spec_data = {**SPEC, "datasets": [SMOKE_DATA], "fixed": {**SPEC["fixed"], "epochs": 1}}
    from mlflow.tracking import MlflowClient

    root = Path(tempfile.mkdtemp(prefix="tlb-bench-tracking-"))
    template = root / "template.db"
    start = time.perf_counter()
    MlflowClient(f"sqlite:///{template}").search_experiments()  # one-off schema creation
    store_s = time.perf_counter() - start
    # Warm-up: imports, dataset memo and feature cache identical for both arms.
    (root / "warm").mkdir()
    _study(root / "warm", spec_data, track=False, trials=1, template=None)
    tracked: list[float] = []
    untracked: list[float] = []
    summaries: list[float] = []
    for i in range(args.rounds):
        order = (True, False) if i % 2 == 0 else (False, True)
        for track in order:
            folder = root / f"r{i}-{'on' if track else 'off'}"
            folder.mkdir()
            figures = _study(folder, spec_data, track=track, trials=args.trials, template=template)
            (tracked if track else untracked).append(figures["study_s"])
            if track:
                summaries.append(figures["summary_s"])
            print(f"round {i} tracking={'on ' if track else 'off'} study {figures['study_s']:.2f}s", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    on, off = statistics.median(tracked), statistics.median(untracked)
    result = {
        "benchmark": "tracking",
        "ratio": round(on / off, 4),
        "target": "<= 1.03",
        "meets_target": on / off <= 1.03,
        "tracked_s": [round(x, 3) for x in tracked],
        "untracked_s": [round(x, 3) for x in untracked],
        "trials_per_study": args.trials,
        "overhead_ms_per_trial": round((on - off) / args.trials * 1000, 1),
        "summary_s_median": round(statistics.median(summaries), 3),
        "store_creation_s": round(store_s, 3),
        "smoke": args.smoke,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
