"""A served classifier of either kind: one model's bundle, or an ensemble of several.

An ensemble is stored as one ``config.json`` (format ``tl-bench-ensemble/1``: its class names,
the preprocessing images get, and every member's own bundle card) and one ``model.safetensors``
(member ``i``'s weights under ``members.<i>.``), the same two files a single model's bundle has,
so ``tracking.logged_models.log_trial_model`` logs either (``save_classifier`` writes them). ``load_classifier`` reads both formats;
an ensemble's members are unpacked into bundle folders of their own and rebuilt by
``models.load_bundle``, the one reader of a model's files.

Images come in as uint8 at the preprocessing's size. Each member normalises them with its own
mean and std (``LogitNetwork`` reuses the buffers of the member's ``InferenceNetwork``, so its
input is bitwise that of the served model); an ensemble's output is the mean of its members'
logits (``evaluation.Ensemble``), and what MLflow serves is its softmax.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from tl_bench.config import TrialConfig
from tl_bench.errors import WeightsError
from tl_bench.evaluation import Ensemble
from tl_bench.models import Bundle, InferenceNetwork, count_params, load_bundle, measure_flops
from tl_bench.models.bundle import BUNDLE_FORMAT, CONFIG_FILE, WEIGHTS_FILE

ENSEMBLE_FORMAT = "tl-bench-ensemble/1"
_PREFIX = "members.{}."


class LogitNetwork(nn.Module):
    """uint8 images (N, 3, S, S) -> logits (N, K): a served model's normalisation, then its model."""

    def __init__(self, network: InferenceNetwork) -> None:
        super().__init__()
        self.inner = network
        self.num_classes = int(network.model.num_classes)

    def forward(self, images: Tensor) -> Tensor:
        inner = self.inner
        return inner.model(torch.addcmul(inner.shift, images.float(), inner.scale)).float()


class Probabilities(nn.Module):
    """Softmax over classes of a logit network's output: what a served model returns."""

    def __init__(self, logits: nn.Module) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, images: Tensor) -> Tensor:
        return torch.softmax(self.logits(images), dim=1)


@dataclass
class Classifier:
    """One model or an ensemble, rebuilt from its files (eval mode, CPU)."""

    members: list[Bundle]
    card: dict[str, Any]  # the whole of its config.json

    @property
    def is_ensemble(self) -> bool:
        return self.card.get("format") == ENSEMBLE_FORMAT

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.card["preprocessing"])

    @property
    def config(self) -> TrialConfig:
        """The first member's config: the data settings every member shares."""
        return self.members[0].config

    def logit_network(self) -> nn.Module:
        """uint8 images -> logits (the members' mean for an ensemble)."""
        nets = [LogitNetwork(b.network()) for b in self.members]
        return Ensemble(nets, num_classes=len(self.class_names)) if self.is_ensemble else nets[0]

    def network(self) -> nn.Module:
        """uint8 images -> probabilities: what MLflow serves (a single model: its ``InferenceNetwork``)."""
        if not self.is_ensemble:
            return self.members[0].network()
        return Probabilities(self.logit_network()).eval()

    def cost(self) -> dict[str, float]:
        """Inference cost summed over members: ``params_total`` and ``flops_fwd_per_image``."""
        size = int(self.preprocessing["img_size"])
        return {"params_total": float(sum(count_params(b.model)["params_total"] for b in self.members)),
                "flops_fwd_per_image": float(sum(measure_flops(b.model, size)["flops_fwd_per_image"]
                                                 for b in self.members))}


def ensemble_card(members: Sequence[Bundle], *, interpolation: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` of an ensemble of ``members`` (same class names and input size) whose
    images are resized with ``interpolation``; ``extra`` (members' trials, accuracies) goes beside it."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    first = members[0]
    for other in members[1:]:
        if other.class_names != first.class_names or other.preprocessing["img_size"] != first.preprocessing["img_size"]:
            raise WeightsError("ensemble members differ in class names or input size",
                               "models of one dataset study (same classes, same img_size)")
    return {
        "format": ENSEMBLE_FORMAT,
        "num_classes": len(first.class_names),
        "class_names": list(first.class_names),
        "preprocessing": {"img_size": int(first.preprocessing["img_size"]), "interpolation": interpolation,
                          "resize": first.preprocessing.get("resize", ""), "channels": "RGB",
                          "normalisation": "each member its own mean and std"},
        "combine": "mean of the members' logits",
        "members": [b.card for b in members],
        **(extra or {}),
    }


def ensemble_of(members: Sequence[Bundle], *, interpolation: str, extra: dict[str, Any] | None = None) -> Classifier:
    """The ensemble of ``members`` (see ``ensemble_card``)."""
    return Classifier(list(members), ensemble_card(members, interpolation=interpolation, extra=extra))


def save_classifier(classifier: Classifier, folder: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of ``classifier`` into ``folder``; returns it.
    A single model is written by ``models.save_bundle`` (its card and weights as they are)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if classifier.is_ensemble:
        state = {_PREFIX.format(i) + k: v for i, b in enumerate(classifier.members) for k, v in b.model.state_dict().items()}
        metadata = {"format": ENSEMBLE_FORMAT}
    else:
        state, metadata = dict(classifier.members[0].model.state_dict()), {"format": BUNDLE_FORMAT}
    # clone: safetensors refuses tensors that share storage
    save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}, str(folder / WEIGHTS_FILE),
              metadata=metadata)
    (folder / CONFIG_FILE).write_text(json.dumps(classifier.card, indent=2, default=str))
    return folder


def load_classifier(folder: str | Path) -> Classifier:
    """A model's or an ensemble's files (``config.json`` and ``model.safetensors``) rebuilt."""
    folder = Path(folder)
    try:
        card = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        card = {}
    if not isinstance(card, dict) or card.get("format") != ENSEMBLE_FORMAT:
        bundle = load_bundle(folder)  # a single model, or its one-line error
        return Classifier([bundle], bundle.card)
    weights = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    members = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, member in enumerate(card["members"]):
            prefix = _PREFIX.format(i)
            sub = Path(tmp) / str(i)
            sub.mkdir()
            save_file({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}, str(sub / WEIGHTS_FILE),
                      metadata={"format": BUNDLE_FORMAT})
            (sub / CONFIG_FILE).write_text(json.dumps(member))
            members.append(load_bundle(sub))
    return Classifier(members, card)


__all__ = ["ENSEMBLE_FORMAT", "Classifier", "LogitNetwork", "Probabilities", "ensemble_card", "ensemble_of",
           "load_classifier", "save_classifier"]
