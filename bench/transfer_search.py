"""Does screening predict the search, and does warm start help? Measured on offline targets.

Screening: four offline targets (digits with 800 and with 200 training images, 10-class shapes in
the varied style, 10-class shapes in the glyph style drawn with another seed). On each, every
(backbone, weights) candidate of the quickstart (three tiny backbones, scratch or ``local:shapes``
pretrained on the quickstart's 6-class glyph source) is scored by screening (LogME and kNN), then
fine-tuned on a grid (freeze depth all / 0, lr 3e-3 / 1e-2, 4 epochs, gap neck, linear head).
Printed per target: Kendall's tau of each score against each candidate's best validation
accuracy, and the rank each score gave the candidate that did best (it is in a kept top K when
the rank is at most K).

Warm start: on a fifth target (digits with 300 training images, another split), a TPE search of
``--trials`` trials over the quickstart's space, with and without ``warm_start`` from the four
screening studies (top 1 each), for ``--seeds`` sampler seeds. Printed: the best validation accuracy
after each number of trials, mean over seeds.

    python bench/transfer_search.py [--trials 8] [--seeds 3] [--out FOLDER]

Last line: one JSON object with every figure.
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


def _write(folder: Path, name: str, spec: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **spec}, sort_keys=False))
    return path


def _run(folder: Path, spec: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tl_bench", "run", str(spec), "--quiet"], cwd=folder,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{spec.name} failed:\n{done.stderr[-3000:]}")


def _screening(folder: Path, pretrain: dict) -> list[dict]:
    import optuna

    from tl_bench.study.screen import screen_tau

    spec = _write(folder, "screen", {
        "datasets": [{"img_size": 32, **t} for t in TARGETS],
        "space": {"backbones": BACKBONES, "freeze_depth": ["all", 0], "neck": ["gap"], "head": ["linear"],
                  "lr": [3.0e-3, 1.0e-2]},
        "fixed": {**FIXED, "epochs": 4}, "sampler": {"name": "grid", "seed": 0}, "budget": {"n_trials": 24},
        "screen": {"score": "logme"}, "pretrain": pretrain, "keep_models": "none"})
    _run(folder, spec)
    rows = []
    for target in TARGETS:
        study = optuna.load_study(study_name=f"screen/{target['key']}", storage=_storage(folder))
        rows.append({"target": target["key"], **{k.removeprefix("screen."): v for k, v in screen_tau(study).items()}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _warm_start(folder: Path, pretrain: dict, trials: int, seeds: int) -> dict[str, list[float]]:
    import optuna

    quickstart = yaml.safe_load(QUICKSTART.read_text())
    curves: dict[str, list[list[float]]] = {"cold": [], "warm": []}
    for seed in range(seeds):
        for mode in curves:
            extra = {"warm_start": {"from": [f"screen/{t['key']}" for t in TARGETS], "top_k": 1}} if mode == "warm" else {}
            name = f"{mode}{seed}"
            _run(folder, _write(folder, name, {
                "datasets": [{"img_size": 32, **WARM_TARGET}], "space": quickstart["space"], "fixed": FIXED,
                "sampler": {"name": "tpe", "seed": seed}, "pruner": {"name": "none"},
                "budget": {"n_trials": trials}, "pretrain": pretrain, "keep_models": "none", **extra}))
            study = optuna.load_study(study_name=f"{name}/{WARM_TARGET['key']}", storage=_storage(folder))
            values = [t.values[0] if t.values else 0.0 for t in sorted(study.trials, key=lambda t: t.number)]
            curves[mode].append([max(values[: n + 1]) for n in range(len(values))])
            print(json.dumps({"mode": mode, "seed": seed, "best_so_far": curves[mode][-1]}), flush=True)
    return {mode: [round(statistics.mean(c[n] for c in runs), 4) for n in range(trials)]
            for mode, runs in curves.items()}


def _storage(folder: Path) -> str:
    return f"sqlite:///{folder / 'runs' / 'optuna.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep the stores here (default: a temporary folder)")
    args = parser.parse_args()
    pretrain = yaml.safe_load(QUICKSTART.read_text())["pretrain"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        screening = _screening(folder, pretrain)
        warm = _warm_start(folder, pretrain, args.trials, args.seeds)
    for score in ("logme", "knn"):
        ranks = [row[f"best_rank_{score}"] for row in screening if f"best_rank_{score}" in row]
        print(f"{score}: tau {[round(row.get(f'tau_{score}', float('nan')), 2) for row in screening]}, "
              f"rank of the best candidate {ranks}")
    print(f"best val_acc after n trials, mean of {args.seeds} seeds: cold {warm['cold']}, warm {warm['warm']}")
    print(json.dumps({"benchmark": "transfer_search", "screening": screening, "warm_start": warm}))


if __name__ == "__main__":
    main()
