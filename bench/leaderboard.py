"""Benchmark: the leaderboard to CSV against a plain ``mlflow.search_runs`` of the same runs.

Fills an MLflow SQLite store with 10,000 finished trial runs laid out as the
studies write them (a parent run per dataset, nested trials with their tags,
the leaderboard's params and metrics) through MLflow's own client: one
``create_run`` with the tags, one ``log_batch`` of params and metrics and one
status change per run. The store is kept in the temp folder and reused by
later runs of the benchmark (``--refill`` rebuilds it).

Then, in this one process, times ``leaderboard(uri)`` + ``write_csv`` and
``mlflow.search_runs`` (pandas output) of the experiment, interleaved and
alternating which goes first. Target: median ratio <= 1.2.
The last line printed is one JSON object.

    python bench/leaderboard.py [--runs 10000] [--datasets 4] [--repeats 3] [--store FOLDER] [--refill]
    python bench/leaderboard.py --smoke    # 100 runs in a fresh temporary store, one round: proves it runs
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tl_bench.report import leaderboard, write_csv

TARGET = 1.2
STUDY = "bench-leaderboard"
BACKBONES = ["test_resnet", "test_convnext", "test_vit", "test_efficientnet", "resnet18", "resnet50",
             "convnext_tiny", "vit_small_patch16_224"]
WEIGHTS = ["scratch", "pretrained"]
FREEZE = ["0", "1", "2", "all"]
NECKS = ["gap", "gem", "attn"]
HEADS = ["linear", "mlp"]
LRS = ["0.0003", "0.001", "0.003"]


@event.listens_for(Engine, "connect")
def _relaxed_durability(dbapi_connection, connection_record) -> None:  # type: ignore[no-untyped-def]
    # Filling is a one-off bulk write: skip fsync per commit. Reads are unaffected.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def _log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def fill(uri: str, n_runs: int, n_datasets: int, seed: int = 0) -> float:
    """Write the store; returns the seconds it took."""
    rng = random.Random(seed)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(STUDY)
    datasets = [f"dataset{i}" for i in range(n_datasets)]
    parents = {d: client.create_run(experiment_id, run_name=d, tags={
        "tlb.kind": "study", "tlb.study": STUDY, "tlb.dataset": d, "tlb.optuna_study": f"{STUDY}/{d}"}).info.run_id
        for d in datasets}
    combos = list(itertools.product(BACKBONES, WEIGHTS, FREEZE, NECKS, HEADS))
    start = time.perf_counter()
    for i in range(n_runs):
        dataset = datasets[i % n_datasets]
        backbone, weights, freeze, neck, head = rng.choice(combos)
        # One run in five repeats a setting with another seed.
        seed_value = rng.choice([1, 2]) if rng.random() < 0.2 else 0
        quality = 0.5 + 0.4 * rng.random()
        tags = {"tlb.kind": "trial", "tlb.study": STUDY, "tlb.dataset": dataset, "tlb.trial": str(i // n_datasets),
                "tlb.state": "COMPLETE", "tlb.n_stages": "4", "mlflow.parentRunId": parents[dataset]}
        run_id = client.create_run(experiment_id, run_name=f"{backbone}-{weights}-f{freeze}-{neck}-{head}",
                                   tags=tags).info.run_id
        params = {"dataset": dataset, "backbone": backbone, "weights": weights, "freeze_depth": freeze,
                  "neck": neck, "head": head, "lr": rng.choice(LRS), "batch_size": "64", "epochs": "5",
                  "seed": str(seed_value)}
        params_total = 1_000_000 + 100_000 * BACKBONES.index(backbone)
        trainable = params_total // (2 + FREEZE.index(freeze))
        metrics = {"val_acc": quality + 0.05 * rng.random(), "test_acc": quality + 0.05 * rng.random(),
                   "params_total": params_total, "params_trainable": trainable,
                   "flops_fwd_per_image": 1e8 + 1e7 * BACKBONES.index(backbone),
                   "train_time_s": trainable / 1e5 * (1 + rng.random()), "train_throughput_ips": 500 * rng.random(),
                   "peak_mem_mb": 100 + 50 * rng.random(), "n_stages": 4, "epochs_run": 5}
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run_id, "FINISHED")
        if (i + 1) % 1000 == 0:
            rate = (i + 1) / (time.perf_counter() - start)
            _log(f"filled {i + 1}/{n_runs} runs ({rate:.0f} runs/s, {(n_runs - i - 1) / rate:.0f} s left)")
    client.set_experiment_tag(experiment_id, "tlb.bench.runs", str(n_runs))  # marks the store complete
    return time.perf_counter() - start


def store_ready(uri: str, n_runs: int) -> bool:
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(STUDY)
    return experiment is not None and experiment.tags.get("tlb.bench.runs") == str(n_runs)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--datasets", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds; each times both, order alternating")
    parser.add_argument("--store", type=Path, default=None, help="store folder (default: in the temp folder)")
    parser.add_argument("--refill", action="store_true", help="rebuild the store even when it is complete")
    parser.add_argument("--smoke", action="store_true", help="100 runs, 2 datasets, 1 round, a store of its own")
    args = parser.parse_args(argv)
    scratch = None
    if args.smoke:
        args.runs, args.datasets, args.repeats = 100, 2, 1
        if args.store is None:  # not the kept store of full runs: made here, removed at the end
            scratch = Path(tempfile.mkdtemp(prefix="tlb-bench-leaderboard-"))
            args.store = scratch / "store"

    folder = args.store or Path(tempfile.gettempdir()) / "tl-bench-bench" / f"leaderboard-{args.runs}"
    uri = f"sqlite:///{folder.absolute() / 'mlflow.db'}"
    fill_s = None
    reused = (folder / "mlflow.db").exists() and not args.refill and store_ready(uri, args.runs)
    if not reused:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _log(f"filling {uri} with {args.runs} trial runs")
        fill_s = fill(uri, args.runs, args.datasets)
    experiment_id = MlflowClient(tracking_uri=uri).get_experiment_by_name(STUDY).experiment_id
    mlflow.set_tracking_uri(uri)
    out_csv = folder / "leaderboard.csv"

    def plain() -> int:
        return len(mlflow.search_runs(experiment_ids=[experiment_id]))

    def ours() -> int:
        board = leaderboard(uri)
        write_csv(board, out_csv)
        return len(board)

    # Untimed warm-up: imports, database engines and caches of both paths (a dataset the store holds:
    # the leaderboard refuses one it does not).
    leaderboard(uri, dataset="dataset0")
    mlflow.search_runs(experiment_ids=[experiment_id], max_results=1)
    times: dict[str, list[float]] = {"leaderboard": [], "search_runs": []}
    sizes: dict[str, int] = {}
    for round_ in range(args.repeats):
        order = [("leaderboard", ours), ("search_runs", plain)]
        for name, fn in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            sizes[name] = fn()
            times[name].append(time.perf_counter() - start)
            _log(f"round {round_ + 1}: {name} {times[name][-1]:.2f} s ({sizes[name]} rows)")
    lb, sr = statistics.median(times["leaderboard"]), statistics.median(times["search_runs"])
    result = {
        "benchmark": "leaderboard_csv_vs_search_runs",
        "ratio": round(lb / sr, 3),
        "target": TARGET,
        "meets_target": lb / sr <= TARGET,
        "runs": args.runs,
        "leaderboard_csv_s": round(lb, 3),
        "search_runs_s": round(sr, 3),
        "round_ratios": [round(a / b, 3) for a, b in zip(times["leaderboard"], times["search_runs"])],
        "leaderboard_rows": sizes["leaderboard"],
        "search_runs_rows": sizes["search_runs"],
        "fill_s": None if fill_s is None else round(fill_s, 1),
        "fill_runs_per_s": None if fill_s is None else round(args.runs / fill_s, 1),
        "store_reused": reused,
        "store": uri,
        "smoke": args.smoke,
    }
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
