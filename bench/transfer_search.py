"""Does screening predict the search, and does warm start help? Measured on offline targets.

Screening: four offline targets (digits with 800 and with 200 training images, 10-class shapes in
the varied style, 10-class shapes in the glyph style drawn with another seed). On each, every
(backbone, weights) candidate of the quickstart (three tiny backbones, scratch or ``local:shapes``
pretrained on the quickstart's 6-class glyph source) is scored by screening (LogME and kNN), then
fine-tuned on a grid (freeze depth all / 0, lr 3e-3 / 1e-2, 4 epochs, gap neck, linear head).
Printed per target: Kendall's tau of each score against each candidate's best validation
accuracy, beside the tau of the data-free static rankers a score has to beat (the backbone's
parameter count and the probe's forward FLOPs, tau-b: the two weights of one backbone tie), and
the rank each gave the candidate that did best (it is in a kept top K when the rank is at most K).

Warm start: on a fifth target (digits with 300 training images, another split), a TPE search of
``--trials`` trials over the quickstart's space, with and without ``warm_start`` (top 1 each) from
the screening studies that share no image with the target (``--warm-sources disjoint``, the
default: checked by pixel content with ``tl_bench.data.overlap``, the two shapes targets), or from
all four (``all``: the two digits sources then saw images of the target's validation and test
splits, and ``tl-bench run`` warns so), for ``--seeds`` sampler seeds. Printed: each source's overlap
with the target, and the best validation accuracy after each number of trials, mean over seeds.

    python bench/transfer_search.py [--trials 8] [--seeds 3] [--warm-sources disjoint|all] [--out FOLDER]
    python bench/transfer_search.py --screening-only   # the screening part alone (no warm start; ratio null)
    python bench/transfer_search.py --smoke    # one small target, 2 backbones, tiny pretraining: proves it runs

Last line: one JSON object with every figure; ``ratio`` is warm start's best validation accuracy after
the last trial over the cold search's (mean over seeds), the figure the warm-start table ends on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

QUICKSTART = Path(__file__).resolve().parent.parent / "studies" / "quickstart.yaml"
BACKBONES = [{"name": b, "weights": ["scratch", "local:shapes"]} for b in ("test_resnet", "test_convnext", "test_vit")]
TARGETS = [
    {"name": "digits", "key": "digits800", "train_size": 800, "val_size": 200},
    {"name": "digits", "key": "digits200", "train_size": 200, "val_size": 200},
    {"name": "shapes", "key": "shapes_varied", "val_size": 200,
     "options": {"num_classes": 10, "n_per_class": 120, "style": "varied", "data_seed": 1}},
    {"name": "shapes", "key": "shapes_glyph10", "val_size": 200,
     "options": {"num_classes": 10, "n_per_class": 120, "style": "glyph", "data_seed": 1}},
]
WARM_TARGET = {"name": "digits", "key": "digits300", "train_size": 300, "val_size": 200, "split_seed": 1}
FIXED = {"optimizer": "adamw", "batch_size": 64, "backbone_lr_scale": 1.0, "weight_decay": 1.0e-4,
         "select": "best_val"}
GRID = {"freeze_depth": ["all", 0], "lr": [3.0e-3, 1.0e-2], "epochs": 4}
# --smoke: seconds, not minutes; it says the benchmark runs, nothing about screening or warm start
SMOKE_BACKBONES = [{"name": b, "weights": ["scratch", "local:shapes"]} for b in ("test_resnet", "test_vit")]
SMOKE_TARGETS = [{"name": "digits", "key": "digits96", "train_size": 96, "val_size": 48}]
SMOKE_WARM_TARGET = {"name": "digits", "key": "digits64", "train_size": 64, "val_size": 48, "split_seed": 1}
SMOKE_GRID = {"freeze_depth": ["all"], "lr": [1.0e-2], "epochs": 1}
SMOKE_PRETRAIN = {"shapes": {"dataset": {"name": "shapes", "img_size": 32, "val_size": 24,
                                         "options": {"num_classes": 6, "n_per_class": 24, "test_fraction": 0.15,
                                                     "style": "glyph"}},
                             "epochs": 1, "lr": 3.0e-3, "batch_size": 64, "seed": 0}}


def _write(folder: Path, name: str, spec: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **spec}, sort_keys=False))
    return path


def _run(folder: Path, spec: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tl_bench", "run", str(spec), "--quiet"], cwd=folder,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{spec.name} failed:\n{done.stderr[-3000:]}")


def _screening(folder: Path, pretrain: dict, backbones: list[dict], targets: list[dict], grid: dict) -> list[dict]:
    import optuna

    from tl_bench.study.screen import screen_tau

    trials = sum(len(b["weights"]) for b in backbones) * len(grid["freeze_depth"]) * len(grid["lr"])
    spec = _write(folder, "screen", {
        "datasets": [{"img_size": 32, **t} for t in targets],
        "space": {"backbones": backbones, "freeze_depth": grid["freeze_depth"], "neck": ["gap"], "head": ["linear"],
                  "lr": grid["lr"]},
        "fixed": {**FIXED, "epochs": grid["epochs"]}, "sampler": {"name": "grid", "seed": 0},
        "budget": {"n_trials": trials}, "screen": {"score": "knn"}, "pretrain": pretrain, "keep_models": "none"})
    _run(folder, spec)
    rows = []
    for target in targets:
        study = optuna.load_study(study_name=f"screen/{target['key']}", storage=_storage(folder))
        rows.append({"target": target["key"], **{k.removeprefix("screen."): v for k, v in screen_tau(study).items()}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _warm_start(folder: Path, pretrain: dict, trials: int, seeds: int, *, space: dict, sources: list[dict],
                target: dict) -> dict[str, list[float]]:
    import optuna

    curves: dict[str, list[list[float]]] = {"cold": [], "warm": []}
    for seed in range(seeds):
        for mode in curves:
            sourced = {"warm_start": {"from": [f"screen/{t['key']}" for t in sources], "top_k": 1}}
            extra = sourced if mode == "warm" else {}
            name = f"{mode}{seed}"
            _run(folder, _write(folder, name, {
                "datasets": [{"img_size": 32, **target}], "space": space, "fixed": FIXED,
                "sampler": {"name": "tpe", "seed": seed}, "pruner": {"name": "none"},
                "budget": {"n_trials": trials}, "pretrain": pretrain, "keep_models": "none", **extra}))
            study = optuna.load_study(study_name=f"{name}/{target['key']}", storage=_storage(folder))
            values = [t.values[0] if t.values else 0.0 for t in sorted(study.trials, key=lambda t: t.number)]
            curves[mode].append([max(values[: n + 1]) for n in range(len(values))])
            print(json.dumps({"mode": mode, "seed": seed, "best_so_far": curves[mode][-1]}), flush=True)
    return {mode: [round(statistics.mean(c[n] for c in runs), 4) for n in range(trials)]
            for mode, runs in curves.items()}


def _settings(target: dict):  # type: ignore[no-untyped-def]
    from tl_bench.config import DataSettings

    return DataSettings(dataset=target["name"], img_size=32, train_size=target.get("train_size"),
                        val_size=target.get("val_size"), split_seed=target.get("split_seed", 0),
                        dataset_options=target.get("options", {}))


def _overlaps(sources: list[dict], target: dict) -> dict[str, dict[str, int]]:
    """Per source: how many of the target's validation and test images it holds, by pixel content."""
    from tl_bench.data.overlap import shared_images

    return {source["key"]: shared_images(_settings(source), _settings(target)) for source in sources}


def _storage(folder: Path) -> str:
    return f"sqlite:///{folder / 'runs' / 'optuna.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep the stores here (default: a temporary folder)")
    parser.add_argument("--warm-sources", choices=("disjoint", "all"), default="disjoint",
                        help="warm-start from the sources sharing no image with the target (default), or all four")
    parser.add_argument("--screening-only", action="store_true",
                        help="measure screening against the static rankers only; skip the warm-start searches")
    parser.add_argument("--smoke", action="store_true",
                        help="one small target, 2 backbones, tiny pretraining, 2 warm-start trials, 1 seed")
    args = parser.parse_args()
    quickstart = yaml.safe_load(QUICKSTART.read_text())
    pretrain, backbones, targets, grid = quickstart["pretrain"], BACKBONES, TARGETS, GRID
    warm_target, space = WARM_TARGET, quickstart["space"]
    if args.smoke:
        args.trials, args.seeds = 2, 1
        pretrain, backbones, targets, grid = SMOKE_PRETRAIN, SMOKE_BACKBONES, SMOKE_TARGETS, SMOKE_GRID
        warm_target, space = SMOKE_WARM_TARGET, {**space, "backbones": SMOKE_BACKBONES, "epochs": [1]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        screening = _screening(folder, pretrain, backbones, targets, grid)
        if args.screening_only:
            _print_screening(screening)
            print(json.dumps({"benchmark": "transfer_search", "ratio": None,
                              "ratio_reason": "--screening-only: no warm-start search was run",
                              "target": "each score's tau above the static rankers' (params, flops) on every target",
                              "screening": screening, "smoke": args.smoke}))
            return
        overlaps = _overlaps(targets, warm_target)
        print(json.dumps({"overlap_with_warm_target": overlaps}), flush=True)
        disjoint = [t for t in targets if not any(overlaps[t["key"]].values())]
        # the smoke target shares its dataset with every source: it only proves the script runs
        sources = targets if args.warm_sources == "all" or args.smoke else disjoint
        warm = _warm_start(folder, pretrain, args.trials, args.seeds, space=space, sources=sources,
                           target=warm_target)
    _print_screening(screening)
    print(f"best val_acc after n trials, mean of {args.seeds} seeds: cold {warm['cold']}, warm {warm['warm']}")
    cold_end, warm_end = warm["cold"][-1], warm["warm"][-1]
    ratio = {"ratio": round(warm_end / cold_end, 3)} if cold_end > 0 else {
        "ratio": None, "ratio_reason": "the cold search ended at validation accuracy 0"}
    print(json.dumps({"benchmark": "transfer_search", **ratio,
                      "ratio_of": f"warm start / cold: best val_acc after {args.trials} trials, "
                                  f"mean of {args.seeds} seeds",
                      "target": "an accuracy study: screening ranks the best candidate first; warm start ahead of cold",
                      "screening": screening, "warm_start": warm, "warm_sources": [t["key"] for t in sources],
                      "overlap_with_warm_target": overlaps, "smoke": args.smoke}))


def _print_screening(screening: list[dict]) -> None:
    """Per score and static ranker: its tau on each target, and the rank it gave each target's winner."""
    from tl_bench.screen import RECORDED

    for name in RECORDED:
        taus = [round(row.get(f"tau_{name}", float("nan")), 2) for row in screening]
        ranks = [row[f"best_rank_{name}"] for row in screening if f"best_rank_{name}" in row]
        print(f"{name}: tau {taus}, rank of the best candidate {ranks}")


if __name__ == "__main__":
    main()
