"""The search a practitioner writes by hand today: Optuna's ``study.optimize``, a timm model, a plain
PyTorch loop and one MLflow run per trial logging params and final metrics. No feature cache, no
pruning. The baseline of ``bench/time_to_quality.py``, which gives it the same space, data, seeds,
checkpoints and training recipe (AdamW, the learning rate decayed per step on half a cosine to zero,
no augmentation, the best validation epoch kept) as the tl-bench study it is compared with.

    python bench/handwritten_search.py SETTINGS.json OUT.json

SETTINGS: backbones, weights (label -> {backbone: checkpoint path}), freeze_depth, lr [low, high],
epochs, batch_size, n_trials and/or timeout_s, seed (training), sampler_seed, data (the dataset's
settings) and tracking_uri. OUT: one record per trial (wall-clock times at its start and end,
val_acc, params), written as each trial ends.
"""

from __future__ import annotations

import json
import sys
import time

import mlflow
import optuna
import timm
import torch
from safetensors.torch import load_file

from tl_bench.config import DataSettings  # the same splits as the study (loading data is not what is compared)
from tl_bench.data import load_dataset_for


def build(settings: dict, backbone: str, weights: str, depth: str, classes: int) -> torch.nn.Module:
    size = {"img_size": settings["data"]["img_size"]} if "vit" in backbone else {}  # ViTs fix their input size
    model = timm.create_model(backbone, num_classes=classes, global_pool="avg", **size)
    checkpoint = settings["weights"][weights].get(backbone)
    if checkpoint:
        model.load_state_dict(load_file(checkpoint), strict=False)  # backbone only: the classifier stays new
    groups = timm.models.group_parameters(model, model.group_matcher(coarse=True))
    frozen = len(groups) if depth == "all" else int(depth)
    head = set(model.get_classifier().parameters())
    for i, names in enumerate(groups.values()):
        for name in names:
            param = model.get_parameter(name)
            param.requires_grad = i >= frozen or (depth != "all" and param in head)
    for param in head:
        param.requires_grad = True
    return model


def main() -> None:
    settings = json.load(open(sys.argv[1]))
    torch.set_num_threads(settings.get("threads", torch.get_num_threads()))
    data = load_dataset_for(DataSettings(**settings["data"]))
    records: list[dict] = []
    mlflow.set_tracking_uri(settings["tracking_uri"])
    mlflow.set_experiment("handwritten")

    def objective(trial: optuna.Trial) -> float:
        start = time.time()
        backbone = trial.suggest_categorical("backbone", settings["backbones"])
        weights = trial.suggest_categorical("weights", list(settings["weights"]))
        depth = trial.suggest_categorical("freeze_depth", [str(d) for d in settings["freeze_depth"]])
        lr = trial.suggest_float("lr", *settings["lr"], log=True)
        epochs = trial.suggest_categorical("epochs", settings["epochs"])
        torch.manual_seed(settings["seed"])
        model = build(settings, backbone, weights, depth, data.num_classes)
        cfg = model.pretrained_cfg
        mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        prep = lambda x: (x.float() / 255 - mean) / std  # noqa: E731
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
        x_train, y_train = data.train.images, data.train.labels
        steps = epochs * -(-len(y_train) // settings["batch_size"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        best = 0.0
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(y_train)).split(settings["batch_size"]):
                loss = torch.nn.functional.cross_entropy(model(prep(x_train[idx])), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            with torch.no_grad():
                pred = torch.cat([model(prep(x)).argmax(1) for x in data.val.images.split(256)])
            best = max(best, (pred == data.val.labels).float().mean().item())
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            mlflow.log_params(trial.params)
            mlflow.log_metric("val_acc", best)
        records.append({"start": start, "end": time.time(), "val_acc": best, "params": trial.params})
        json.dump(records, open(sys.argv[2], "w"))
        return best

    sampler = optuna.samplers.TPESampler(seed=settings.get("sampler_seed", settings["seed"]))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=settings.get("n_trials"), timeout=settings.get("timeout_s"))


if __name__ == "__main__":
    main()
