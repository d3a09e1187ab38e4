"""Time to quality: tl-bench against the search users write by hand, on the same space and budget.

Both search one target with the same space, the same training (``bench/handwritten_search.py``
writes tl-bench's trial out by hand: head stripped as tl-bench does, checkpoints loaded as tl-bench
loads them, gap neck, linear head, frozen groups kept in eval mode), TPE seeded alike, the same
budget of wall-clock seconds and the same first trials: with ``start: candidates`` tl-bench
fine-tunes every (backbone, weights) candidate once before TPE, in an order shuffled with the
sampler's seed, and the hand-written search enqueues those same trials in that same order.
(a) ``bench/handwritten_search.py``: Optuna's ``study.optimize``, a plain PyTorch loop, one MLflow
run per trial, no cache, no pruning. (b) ``tl-bench run`` with its feature cache and a median
pruner. Each starts as a fresh process; its clock starts at launch. Each sampler seed is one round
(the order of the two alternates). Printed per round: the wall time each needs to first reach a
validation accuracy within one point of the best either found, the ratio handwritten / tl-bench,
and the floor: importing torch, timm, MLflow and Optuna plus the shortest trial (of either) that
reached that accuracy, which no search can beat, and so the largest ratio the round allows.

Targets (``--target``): ``quickstart``, the quickstart's three tiny backbones, scratch against
``local:shapes`` weights (pretrained once, before either starts, and given to both);
``lite0``, EfficientNet-Lite0 with a checkpoint file (``--weights``, by default the one
``examples/efficientnet_lite0.py`` writes) against scratch, beside two tiny backbones from scratch,
at 64 px. ``--dataset``: digits, or 10-class shapes (offline, 4 shapes the pretraining never saw).

    python bench/time_to_quality.py [--seeds 0 1 2 3 4] [--budget-s 60] [--pruner median|none]
                                    [--screen K] [--start candidates|sampler]
                                    [--target quickstart|lite0] [--weights PATH] [--dataset digits|shapes]
    python bench/time_to_quality.py --smoke    # tiny data, scratch weights, 3 trials a side, one seed

Last line: one JSON object (benchmark, ratio: the median over rounds, its min and max, and the
figures).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
LITE0_WEIGHTS = HERE.parent / "studies" / "runs" / "weights" / "tf_efficientnet_lite0.safetensors"
DATASETS = {
    "digits": {"name": "digits", "key": "digits", "train_size": 800, "val_size": 200, "split_seed": 0},
    "shapes": {"name": "shapes", "key": "shapes10", "val_size": 200, "split_seed": 0,
               "options": {"num_classes": 10, "n_per_class": 120, "style": "glyph", "data_seed": 1}},
}
SHAPES_PRETRAIN = {"dataset": {"name": "shapes", "img_size": 32, "val_size": 150,
                               "options": {"num_classes": 6, "n_per_class": 200, "test_fraction": 0.15}},
                   "epochs": 3, "lr": 1.0e-3, "batch_size": 64, "seed": 0}
MEDIAN = {"name": "median", "n_startup_trials": 8, "n_warmup_steps": 1}
FIXED = {"optimizer": "adamw", "batch_size": 64, "backbone_lr_scale": 1.0, "weight_decay": 1.0e-4,
         "select": "best_val"}


def _target(args: argparse.Namespace) -> dict[str, Any]:
    """Backbones with their weights labels, depths, ranges, image size, budget and pretraining of a target."""
    if args.target == "quickstart":
        if args.weights:
            raise SystemExit("--weights is the checkpoint of --target lite0; accepted: --target lite0 --weights PATH")
        # the smoke run skips pretraining (a process of its own): scratch weights only
        labels = ["scratch"] if args.smoke else ["scratch", "local:shapes"]
        target = {"backbones": {b: labels for b in ("test_resnet", "test_convnext", "test_vit")},
                  "freeze_depth": [0, 2, "all"],
                  "lr": [1.0e-3, 2.0e-2], "epochs": [2, 4], "img_size": 32, "budget_s": 60.0,
                  "pretrain": {} if args.smoke else {"shapes": SHAPES_PRETRAIN}}
    else:
        weights = Path(args.weights or LITE0_WEIGHTS).absolute()
        if not weights.is_file():
            raise SystemExit(f"--weights {str(weights)!r} does not exist; accepted: a tf_efficientnet_lite0 "
                             "checkpoint file (python examples/efficientnet_lite0.py writes the default one)")
        target = {"backbones": {"tf_efficientnet_lite0": ["scratch", str(weights)], "test_resnet": ["scratch"],
                                "test_convnext": ["scratch"]},
                  "freeze_depth": [0, 4, "all"], "lr": [1.0e-3, 3.0e-2], "epochs": [3, 6], "img_size": 64,
                  "budget_s": 180.0, "pretrain": {}}
    data = {**DATASETS[args.dataset], "img_size": args.img_size or target["img_size"]}
    if args.smoke:  # seconds, not minutes: says the benchmark runs, nothing about speed
        data |= {"train_size": 96, "val_size": 48} if data["name"] == "digits" else {
            "val_size": 40, "options": {**data["options"], "n_per_class": 20}}
        target |= {"epochs": [1], "n_trials": 3}
    return {**target, "data": data, "budget_s": args.budget_s or target["budget_s"]}


def _spec(target: dict[str, Any], seed: int, pruner: str, screen: int, start: str) -> dict[str, Any]:
    budget = {"n_trials": target["n_trials"]} if "n_trials" in target else {"timeout_s": target["budget_s"]}
    return ({"screen": {"score": "logme", "keep": screen}} if screen else {}) | {
        "name": "ttq",
        "datasets": [target["data"]],
        "space": {"backbones": [{"name": b, "weights": w} for b, w in target["backbones"].items()],
                  "freeze_depth": target["freeze_depth"], "neck": ["gap"], "head": ["linear"],
                  "lr": {"low": target["lr"][0], "high": target["lr"][1], "log": True}, "epochs": target["epochs"]},
        "fixed": FIXED,
        "sampler": {"name": "tpe", "seed": seed},
        "pruner": MEDIAN if pruner == "median" else {"name": pruner},
        "budget": budget,
        "start": start,
    } | ({"pretrain": target["pretrain"]} if target["pretrain"] else {})


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed:\n{done.stderr[-3000:]}")


def _first_trials(spec_path: Path) -> list[dict[str, Any]]:
    """tl-bench's start as plain values (backbone, weights, freeze_depth, lr, epochs), in its order:
    what the hand-written search enqueues. Without screening's ranking (the hand-written search
    does not screen), so with ``--screen`` it is the order tl-bench would use unscreened."""
    from tl_bench.models.timm_model import count_stages
    from tl_bench.spec import load_spec
    from tl_bench.study.space import SearchSpace
    from tl_bench.study.start import candidate_starts

    spec = load_spec(spec_path)
    space = SearchSpace(spec, {b.name: count_stages(b.name) for b in spec.space.backbones})
    starts = []
    for params in candidate_starts(space):
        bb = params["backbone"]
        starts.append({"backbone": bb, "weights": params.get(f"weights@{bb}", space.weights[bb][0]),
                       "freeze_depth": params.get(f"freeze_depth@{bb}", str(space.depths[bb][0])),
                       "lr": params["lr"], "epochs": params["epochs"]})
    return starts


def _tlbench(folder: Path, spec: Path, key: str, starts: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """(end, val_acc, seconds) of each finished trial, the end counted from launch."""
    import optuna

    from tl_bench.study.space import candidate_of

    runs = folder / "runs"
    for name in ("optuna.db", "mlflow.db", "cache", "artifacts"):  # a first run; the checkpoints stay
        path = runs / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    start = time.time()
    _run([sys.executable, "-m", "tl_bench", "run", str(spec), "--quiet"], folder)
    study = optuna.load_study(study_name=f"ttq/{key}", storage=f"sqlite:///{runs / 'optuna.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    started = [candidate_of(t) for t in trials if "fixed_params" in t.system_attrs
               and t.state != optuna.trial.TrialState.WAITING]
    given = [f"{s['backbone']}|{s['weights']}" for s in starts][: len(started)]
    if starts and started != given:  # the two must start alike, or the comparison measures the order
        raise SystemExit(f"tl-bench started with {started}, the hand-written search was given {given}")
    return [(t.datetime_complete.timestamp() - start, t.values[0], t.duration.total_seconds())
            for t in trials if t.values]


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


def _imports_s(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, timm, mlflow, optuna"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_to(trials: list[tuple[float, float, float]], threshold: float) -> float:
    return min((t for t, acc, _ in trials if acc >= threshold), default=math.inf)


def _number(value: float, digits: int = 2) -> float | None:
    """JSON has no infinity: a side that never reached the best has no finite time or ratio."""
    return round(value, digits) if math.isfinite(value) else None


def _round(runs: dict[str, list[tuple[float, float, float]]], imports_s: float) -> dict[str, Any]:
    best = max(acc for trials in runs.values() for _, acc, _ in trials)
    times = {name: _time_to(trials, best - 0.01) for name, trials in runs.items()}
    fastest = min(s for trials in runs.values() for _, acc, s in trials if acc >= best - 0.01)
    floor = imports_s + fastest
    # one side always reaches the best: a tl-bench that never did scores 0, a hand-written one infinity
    ratio = 0.0 if math.isinf(times["tl-bench"]) else times["handwritten"] / times["tl-bench"]
    return {"best_val_acc": round(best, 4), **{f"{k}_s": _number(v, 1) for k, v in times.items()},
            **{f"{k}_best": round(max(a for _, a, _ in v), 4) for k, v in runs.items()},
            **{f"{k}_trials": len(v) for k, v in runs.items()},
            "floor_s": round(floor, 1), "ratio": round(ratio, 2),
            "largest_ratio": round(times["handwritten"] / floor, 2)}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [row["ratio"] for row in rows]
    median = statistics.median(ratios)
    out: dict[str, Any] = {"ratio": _number(median), "ratio_min": _number(min(ratios)),
                           "ratio_max": _number(max(ratios)),
                           "largest_ratio_median": _number(statistics.median(row["largest_ratio"] for row in rows))}
    if out["ratio"] is None:
        out["ratio_reason"] = "the hand-written search never reached the best in most rounds (ratio infinite)"
    for row in rows:
        row["ratio"], row["largest_ratio"] = _number(row["ratio"]), _number(row["largest_ratio"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="sampler seeds, one round each (0 1 2 3 4)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds of search for each after start-up (60; 180 for --target lite0)")
    parser.add_argument("--pruner", choices=["median", "none"], default="median", help="tl-bench's pruner")
    parser.add_argument("--screen", type=int, default=0, metavar="K",
                        help="tl-bench screens the candidates with LogME and searches the best K (0: off)")
    parser.add_argument("--start", choices=["candidates", "sampler"], default="candidates",
                        help="both start with a standard fine-tune of each candidate, or TPE from trial 0")
    parser.add_argument("--target", choices=["quickstart", "lite0"], default="quickstart",
                        help="the quickstart's tiny backbones, or EfficientNet-Lite0 with --weights")
    parser.add_argument("--weights", type=Path, default=None,
                        help=f"tf_efficientnet_lite0 checkpoint for --target lite0 (default {LITE0_WEIGHTS})")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits", help="the target dataset")
    parser.add_argument("--img-size", type=int, default=None, help="input size (32; 64 for --target lite0)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data, scratch weights, 3 trials a side, seed 0: proves it runs")
    args = parser.parse_args()
    seeds = args.seeds or ([0] if args.smoke else [0, 1, 2, 3, 4])
    target = _target(args)
    from tl_bench.pretrain import checkpoint_path
    from tl_bench.spec import load_spec

    imports_s = _imports_s(1 if args.smoke else 3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec_path = folder / "ttq.yaml"

        def write_spec(seed: int) -> None:
            data = _spec(target, seed, args.pruner, args.screen, args.start)
            spec_path.write_text(yaml.safe_dump(data, sort_keys=False))

        write_spec(seeds[0])
        candidates: dict[str, dict[str, str | None]] = {}
        if target["pretrain"]:
            _run([sys.executable, "-m", "tl_bench", "pretrain", str(spec_path)], folder)
        spec = load_spec(spec_path)
        for backbone, labels in target["backbones"].items():
            candidates[backbone] = {label: (str(checkpoint_path(spec, "shapes", backbone)) if label == "local:shapes"
                                            else None if label == "scratch" else label) for label in labels}
        data = target["data"]
        settings = {"candidates": candidates, "freeze_depth": target["freeze_depth"], "lr": target["lr"],
                    "epochs": target["epochs"], "batch_size": FIXED["batch_size"], "seed": 0,
                    "data": {"dataset": data["name"], "img_size": data["img_size"],
                             "train_size": data.get("train_size"), "val_size": data.get("val_size"),
                             "split_seed": data["split_seed"], "dataset_options": data.get("options", {})},
                    **({"n_trials": target["n_trials"]} if "n_trials" in target else {"timeout_s": target["budget_s"]})}
        rows = []
        for index, seed in enumerate(seeds):
            write_spec(seed)
            starts = _first_trials(spec_path) if args.start == "candidates" else []
            hand = {**settings, "sampler_seed": seed, "start": starts}
            runs = {}
            for name in ["tl-bench", "handwritten"][:: 1 if index % 2 == 0 else -1]:
                runs[name] = (_tlbench(folder, spec_path, data["key"], [] if args.screen else starts)
                              if name == "tl-bench" else _handwritten(folder, hand))
            rows.append({"seed": seed, "start_order": [f"{s['backbone']}|{s['weights']}" for s in starts],
                         **_round(runs, imports_s)})
            print(f"round {index}: {rows[-1]}", flush=True)
    print(json.dumps({
        "benchmark": "time_to_quality",
        **_summary(rows),
        "target": ">= 5 (tl-bench reaches within 1 point of the best at least 5x sooner)",
        "imports_s": round(imports_s, 2),
        "search_target": args.target,
        "dataset": args.dataset,
        "budget_s": None if "n_trials" in target else target["budget_s"],
        "n_trials": target.get("n_trials"),
        "pruner": args.pruner,
        "screen_keep": args.screen,
        "start": args.start,
        "smoke": args.smoke,
        "rounds": rows,
    }))


if __name__ == "__main__":
    main()
