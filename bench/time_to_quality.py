"""Time to quality: tl-bench against the search users write by hand, on the same space and budget.

Both search the quickstart's target (digits) over its three tiny backbones, scratch against
``local:shapes`` weights (pretrained once, before either starts, and given to both), freeze depths
0 / 2 / all, the learning rate and the epochs, with a gap neck and a linear head (what timm's own
classifier is), the same training recipe, TPE seeded alike and the same budget of wall-clock seconds.
(a) ``bench/handwritten_search.py``: Optuna's ``study.optimize``, a plain PyTorch loop, one MLflow
run per trial, no cache, no pruning. (b) ``tl-bench run`` with its feature cache, a median
pruner and ``start: candidates`` (one standard fine-tune of each candidate before TPE). Each starts
as a fresh process; its clock starts at launch. Each sampler seed is one round (the order of the
two alternates). Printed per round: the wall time each needs to first reach a
validation accuracy within one point of the best either found, the ratio handwritten / tl-bench,
and the floor: importing torch, timm, MLflow and Optuna plus the shortest trial (of either) that
reached that accuracy, which no search can beat, and so the largest ratio the round allows.

    python bench/time_to_quality.py [--seeds 0 1 2] [--budget-s 60] [--pruner median|none] [--screen K]
                                    [--start candidates|sampler]

Last line: one JSON object (benchmark, ratio, target and the figures).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DATA = {"dataset": "digits", "img_size": 32, "train_size": 800, "val_size": 200, "split_seed": 0}
SPACE = {"backbones": ["test_resnet", "test_convnext", "test_vit"], "freeze_depth": [0, 2, "all"],
         "lr": [1.0e-3, 2.0e-2], "epochs": [2, 4]}
MEDIAN = {"name": "median", "n_startup_trials": 8, "n_warmup_steps": 1}


def _spec(budget_s: float, seed: int, pruner: str = "median", screen: int = 0, start: str = "candidates") -> dict:
    return ({"screen": {"score": "logme", "keep": screen}} if screen else {}) | {
        "name": "ttq",
        "datasets": [{"name": DATA["dataset"], "img_size": DATA["img_size"], "train_size": DATA["train_size"],
                      "val_size": DATA["val_size"], "split_seed": DATA["split_seed"]}],
        "space": {"backbones": [{"name": b, "weights": ["scratch", "local:shapes"]} for b in SPACE["backbones"]],
                  "freeze_depth": SPACE["freeze_depth"], "neck": ["gap"], "head": ["linear"],
                  "lr": {"low": SPACE["lr"][0], "high": SPACE["lr"][1], "log": True}, "epochs": SPACE["epochs"]},
        "fixed": {"optimizer": "adamw", "batch_size": 64, "backbone_lr_scale": 1.0, "weight_decay": 1.0e-4,
                  "select": "best_val"},
        "sampler": {"name": "tpe", "seed": seed},
        "pruner": MEDIAN if pruner == "median" else {"name": pruner},
        "budget": {"timeout_s": budget_s},
        "start": start,
        "pretrain": {"shapes": {"dataset": {"name": "shapes", "img_size": 32, "val_size": 150,
                                            "options": {"num_classes": 6, "n_per_class": 200, "test_fraction": 0.15}},
                                "epochs": 3, "lr": 1.0e-3, "batch_size": 64, "seed": 0}},
    }


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed:\n{done.stderr[-3000:]}")


def _tlbench(folder: Path, spec: Path) -> list[tuple[float, float, float]]:
    """(end, val_acc, seconds) of each finished trial, the end counted from launch."""
    import optuna

    runs = folder / "runs"
    for name in ("optuna.db", "mlflow.db", "cache", "artifacts"):  # a first run; the checkpoints stay
        path = runs / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    start = time.time()
    _run([sys.executable, "-m", "tl_bench", "run", str(spec), "--quiet"], folder)
    study = optuna.load_study(study_name="ttq/digits", storage=f"sqlite:///{runs / 'optuna.db'}")
    return [(t.datetime_complete.timestamp() - start, t.values[0], t.duration.total_seconds())
            for t in study.trials if t.values]


def _handwritten(folder: Path, settings: dict) -> list[tuple[float, float, float]]:
    work = folder / "handwritten"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "settings.json").write_text(json.dumps({**settings, "tracking_uri": f"sqlite:///{work / 'mlflow.db'}"}))
    start = time.time()
    _run([sys.executable, str(HERE / "handwritten_search.py"), str(work / "settings.json"),
          str(work / "trials.json")], work)
    return [(r["end"] - start, r["val_acc"], r["end"] - r["start"])
            for r in json.loads((work / "trials.json").read_text())]


def _imports_s(repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, timm, mlflow, optuna"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_to(trials: list[tuple[float, float, float]], threshold: float) -> float:
    return min((t for t, acc, _ in trials if acc >= threshold), default=float("inf"))


def _round(runs: dict[str, list[tuple[float, float, float]]], imports_s: float) -> dict:
    best = max(acc for trials in runs.values() for _, acc, _ in trials)
    times = {name: _time_to(trials, best - 0.01) for name, trials in runs.items()}
    fastest = min(s for trials in runs.values() for _, acc, s in trials if acc >= best - 0.01)
    floor = imports_s + fastest
    return {"best_val_acc": round(best, 4), **{f"{k}_s": round(v, 1) for k, v in times.items()},
            **{f"{k}_best": round(max(a for _, a, _ in v), 4) for k, v in runs.items()},
            **{f"{k}_trials": len(v) for k, v in runs.items()},
            "floor_s": round(floor, 1), "ratio": round(times["handwritten"] / times["tl-bench"], 2),
            "largest_ratio": round(times["handwritten"] / floor, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampler seeds, one round each")
    parser.add_argument("--budget-s", type=float, default=60.0, help="seconds of search for each (after start-up)")
    parser.add_argument("--pruner", choices=["median", "none"], default="median", help="tl-bench's pruner")
    parser.add_argument("--screen", type=int, default=0, metavar="K",
                        help="tl-bench screens the 6 candidates with LogME and searches the best K (0: off)")
    parser.add_argument("--start", choices=["candidates", "sampler"], default="candidates",
                        help="tl-bench's start: a standard fine-tune of each candidate first, or TPE from trial 0")
    args = parser.parse_args()
    from tl_bench.pretrain import checkpoint_path
    from tl_bench.spec import load_spec

    imports_s = _imports_s()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec_path = folder / "ttq.yaml"

        def write_spec(seed: int) -> None:
            data = _spec(args.budget_s, seed, args.pruner, args.screen, args.start)
            spec_path.write_text(yaml.safe_dump(data, sort_keys=False))

        write_spec(args.seeds[0])
        _run([sys.executable, "-m", "tl_bench", "pretrain", str(spec_path)], folder)
        spec = load_spec(spec_path)
        shapes = {b: str(checkpoint_path(spec, "shapes", b)) for b in SPACE["backbones"]}
        weights = {"scratch": {}, "local:shapes": shapes}
        rows = []
        for index, seed in enumerate(args.seeds):
            write_spec(seed)
            settings = {**SPACE, "weights": weights, "batch_size": 64, "timeout_s": args.budget_s, "seed": 0,
                        "sampler_seed": seed, "data": DATA}
            runs = {}
            for name in ["tl-bench", "handwritten"][:: 1 if index % 2 == 0 else -1]:
                runs[name] = _tlbench(folder, spec_path) if name == "tl-bench" else _handwritten(folder, settings)
            rows.append({"seed": seed, **_round(runs, imports_s)})
            print(f"round {index}: {rows[-1]}", flush=True)
    ratios = [row["ratio"] for row in rows]
    print(json.dumps({
        "benchmark": "time_to_quality",
        "ratio": round(statistics.median(ratios), 2),
        "target": ">= 5 (tl-bench reaches within 1 point of the best at least 5x sooner)",
        "largest_ratio_median": round(statistics.median(row["largest_ratio"] for row in rows), 2),
        "imports_s": round(imports_s, 2),
        "budget_s": args.budget_s,
        "pruner": args.pruner,
        "screen_keep": args.screen,
        "start": args.start,
        "rounds": rows,
    }))


if __name__ == "__main__":
    main()
