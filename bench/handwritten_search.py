"""The search a practitioner writes by hand today: Optuna's ``study.optimize``, a timm model, a plain
PyTorch loop and one MLflow run per trial logging params and final metrics. No feature cache, no
pruning. The baseline of ``bench/time_to_quality.py``, which gives it the same space, data, seeds,
checkpoints, first trials and training as the tl-bench study it is compared with.

Training is tl-bench's, written out: the timm model without the head modules ``forward_features``
never calls (tl-bench's ``strip_head``), a checkpoint loaded as tl-bench loads it
(``load_backbone_file``: classifier dropped, every backbone key checked), the average of the final
map or of the patch tokens (tl-bench's ``gap`` neck) and one linear layer. The first ``freeze_depth``
of timm's coarse parameter groups are frozen and stay in eval mode, so their BatchNorm statistics
never move; frozen BatchNorm of scratch weights gets its statistics from one pass over the training
images first, as tl-bench does by default. AdamW from timm's optimizer factory (no weight decay on
biases, norms and what the model lists in ``no_weight_decay``), the learning rate decayed per step on half a cosine to zero, the same seeded shuffling (a trailing batch
of one dropped), no augmentation, the best validation epoch kept; the data resized with the
interpolation of the model's timm config.

    python bench/handwritten_search.py SETTINGS.json OUT.json

SETTINGS: candidates ({backbone: {weights label: checkpoint path or null}}), freeze_depth, lr
[low, high], epochs, batch_size, n_trials and/or timeout_s, seed (training), sampler_seed, data
(the dataset's settings), start (trials to enqueue first: backbone, weights, freeze_depth, lr,
epochs) and tracking_uri. OUT: one record per trial (wall-clock times at its start and end, val_acc,
params), written as each trial ends.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import timm
from timm.optim import create_optimizer_v2
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from tl_bench.config import DataSettings  # the same splits as the study (loading data is not what is compared)
from tl_bench.data import DatasetSplits, load_dataset_for
from tl_bench.data.images import load_interpolation
from tl_bench.models.neck_base import as_tokens
from tl_bench.models.stages import frozen_roots
from tl_bench.models.timm_model import strip_head
from tl_bench.models.weights import load_backbone_file

EVAL_BATCH = 256  # inference holds no activations: larger batches (tl-bench's: 4x the training batch)
STATS_BATCH = 256  # the pass that gives frozen scratch BatchNorm its statistics


class Classifier(nn.Module):
    """timm backbone, global average of its final features, one linear layer; frozen groups in eval mode."""

    def __init__(self, backbone: str, img_size: int, checkpoint: str | None, depth: str, classes: int) -> None:
        super().__init__()
        size = {"img_size": img_size} if "vit" in backbone else {}  # ViTs fix their input size
        self.body = timm.create_model(backbone, pretrained=False, num_classes=0, **size)
        dropped, _ = strip_head(self.body, backbone, img_size)  # e.g. ConvNeXt's head.norm: never trained
        if checkpoint:
            load_backbone_file(self.body, Path(checkpoint), dropped)
        groups = timm.models.group_parameters(self.body, self.body.group_matcher(coarse=True))
        stages = [names for names in groups.values() if names]
        frozen = len(stages) if depth == "all" else int(depth)
        for index, names in enumerate(stages):
            for name in names:
                self.body.get_parameter(name).requires_grad_(index >= frozen)
        self.frozen = frozen_roots(self.body)
        self.prefix = int(getattr(self.body, "num_prefix_tokens", 0) or 0)  # class token left out of the average
        self.fc = nn.Linear(self.body.num_features, classes)
        self.data_config = timm.data.resolve_model_data_config(self.body)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        for module in self.frozen if mode else []:
            module.eval()  # frozen BatchNorm statistics must not move
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(as_tokens(self.body.forward_features(x), self.prefix).mean(1))

    def no_weight_decay(self) -> set[str]:
        """What timm's optimizer factory leaves undecayed besides biases and norms (a ViT's position
        embedding and class token), under this module's names."""
        return {f"body.{name}" for name in getattr(self.body, "no_weight_decay", set)()}

    def frozen_batchnorms(self) -> list[_BatchNorm]:
        return [m for root in self.frozen for m in root.modules()
                if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def estimate_frozen_stats(model: Classifier, images: torch.Tensor, prep: Any) -> None:
    """Random BatchNorm statistics (mean 0, variance 1) fit no real activation: re-estimate the frozen ones."""
    layers = model.frozen_batchnorms()
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # the average over the whole pass
        layer.train()
    for batch in images.split(STATS_BATCH):
        model.body.forward_features(prep(batch))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
        layer.eval()


def batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    chunks = list(torch.randperm(n, generator=generator).split(size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()  # BatchNorm cannot train on one image
    return chunks


def fit(settings: dict, params: dict[str, Any], data_for: Any) -> list[dict[str, float]]:
    """Mean training loss and validation accuracy of each epoch of one trial; ``data_for(interpolation)``
    gives the splits."""
    backbone, weights = params["backbone"], params["weights"]
    torch.manual_seed(settings["seed"])
    model = Classifier(backbone, settings["data"]["img_size"], settings["candidates"][backbone][weights],
                       params["freeze_depth"], settings["classes"])
    data: DatasetSplits = data_for(load_interpolation(model.data_config["interpolation"]))
    mean = torch.tensor(model.data_config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.data_config["std"]).view(1, 3, 1, 1)
    prep = lambda x: (x.float() / 255 - mean) / std  # noqa: E731
    if weights == "scratch" and model.frozen_batchnorms():
        estimate_frozen_stats(model, data.train.images, prep)
    opt = create_optimizer_v2(model, opt="adamw", lr=params["lr"], weight_decay=1e-4)
    x_train, y_train = data.train.images, data.train.labels
    steps = params["epochs"] * len(batches(len(y_train), settings["batch_size"], torch.Generator().manual_seed(0)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    torch.manual_seed(settings["seed"])
    shuffle = torch.Generator().manual_seed(settings["seed"])
    history = []
    for _ in range(params["epochs"]):
        model.train()
        total, seen = 0.0, 0
        for idx in batches(len(y_train), settings["batch_size"], shuffle):
            loss = F.cross_entropy(model(prep(x_train[idx])).float(), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(prep(x)).argmax(1) for x in data.val.images.split(EVAL_BATCH)])
        history.append({"train_loss": total / seen, "val_acc": (pred == data.val.labels).float().mean().item()})
    return history


def main() -> None:
    settings = json.load(open(sys.argv[1]))
    torch.set_num_threads(settings.get("threads", torch.get_num_threads()))
    splits: dict[str, DatasetSplits] = {}

    def data_for(interpolation: str) -> DatasetSplits:
        if interpolation not in splits:
            splits[interpolation] = load_dataset_for(DataSettings(**settings["data"]), interpolation=interpolation)
        return splits[interpolation]

    settings["classes"] = data_for("bilinear").num_classes  # any resize has the same classes
    records: list[dict] = []
    mlflow.set_tracking_uri(settings["tracking_uri"])
    mlflow.set_experiment("handwritten")
    candidates = settings["candidates"]

    def objective(trial: optuna.Trial) -> float:
        start = time.time()
        backbone = trial.suggest_categorical("backbone", list(candidates))
        labels = list(candidates[backbone])
        weights = trial.suggest_categorical(f"weights@{backbone}", labels) if len(labels) > 1 else labels[0]
        params = {"backbone": backbone, "weights": weights,
                  "freeze_depth": trial.suggest_categorical("freeze_depth", [str(d) for d in settings["freeze_depth"]]),
                  "lr": trial.suggest_float("lr", *settings["lr"], log=True),
                  "epochs": trial.suggest_categorical("epochs", settings["epochs"])}
        best = max(epoch["val_acc"] for epoch in fit(settings, params, data_for))
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            mlflow.log_params(params)
            mlflow.log_metric("val_acc", best)
        records.append({"start": start, "end": time.time(), "val_acc": best, "params": params})
        json.dump(records, open(sys.argv[2], "w"))
        return best

    sampler = optuna.samplers.TPESampler(seed=settings.get("sampler_seed", settings["seed"]))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for first in settings.get("start", []):  # the same first trials as tl-bench's start, in its order
        bb = first["backbone"]
        weights = {f"weights@{bb}": first["weights"]} if len(candidates[bb]) > 1 else {}
        study.enqueue_trial({"backbone": bb, **weights, "freeze_depth": str(first["freeze_depth"]),
                             "lr": first["lr"], "epochs": first["epochs"]})
    study.optimize(objective, n_trials=settings.get("n_trials"), timeout=settings.get("timeout_s"))


if __name__ == "__main__":
    main()
