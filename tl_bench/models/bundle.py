"""A trained model as two plain files, and the network that turns raw pixels into probabilities.

``model.safetensors`` holds every weight of the TransferModel; ``config.json``
holds what rebuilds it (the trial config), the class names and the
preprocessing the network expects. ``load_bundle`` rebuilds the model from
the two files alone: no MLflow, no checkpoint file, no model hub.

``InferenceNetwork`` puts the normalisation in front of the model, so a
caller passes uint8 images at the input size and gets class probabilities;
decoding and resizing stay outside (they are not tensors of fixed size).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from tl_bench.config import TrialConfig
from tl_bench.errors import WeightsError, first_line
from tl_bench.models.model import TransferModel, build_model_for

BUNDLE_FORMAT = "tl-bench-model/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def preprocessing_of(model: TransferModel, interpolation: str) -> dict[str, Any]:
    """What an image goes through before the network, as the trial's data went through it.

    The whole image is resized to a square ``img_size`` (no crop) with
    ``interpolation``, antialiased, kept as uint8; the network normalises with
    ``mean`` and ``std`` of the backbone's data config.
    """
    config = model.backbone.data_config
    return {
        "img_size": int(model.img_size),
        "resize": "whole image to a square, antialiased, uint8",
        "interpolation": interpolation,
        "mean": [float(m) for m in config["mean"]],
        "std": [float(s) for s in config["std"]],
        "channels": "RGB",
    }


class InferenceNetwork(nn.Module):
    """uint8 images (N, 3, S, S) -> class probabilities (N, K), normalised as the trainer does."""

    def __init__(self, model: TransferModel, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        # The same fused multiply-add as the trainer's ImageFeeder, so the inputs are bitwise equal.
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", -mean_t / std_t)

    def forward(self, images: Tensor) -> Tensor:
        x = torch.addcmul(self.shift, images.float(), self.scale)
        return torch.softmax(self.model(x).float(), dim=1)


@dataclass
class Bundle:
    """A model rebuilt from its files, with what ``config.json`` says about it."""

    model: TransferModel
    config: TrialConfig
    class_names: list[str]
    preprocessing: dict[str, Any]
    card: dict[str, Any]  # the whole of config.json

    def network(self) -> InferenceNetwork:
        """The model behind its normalisation, in eval mode."""
        return InferenceNetwork(self.model, self.preprocessing["mean"], self.preprocessing["std"]).eval()


def save_bundle(
    model: TransferModel,
    folder: str | Path,
    *,
    config: TrialConfig,
    class_names: list[str],
    interpolation: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``; returns the folder.

    ``extra`` (trial number, accuracies, ...) goes into config.json beside the rest.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share storage
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": BUNDLE_FORMAT})
    card = {
        "format": BUNDLE_FORMAT,
        "config": config.to_dict(),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "preprocessing": preprocessing_of(model, interpolation),
        "adapters_merged": bool(model.backbone.adapters_merged),  # LoRA/IA3 folded into the weights
        **(extra or {}),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(card, indent=2, default=str))
    return folder


def read_card(folder: str | Path) -> dict[str, Any]:
    """config.json of a bundle; WeightsError when it is missing or not a tl-bench model."""
    path = Path(folder) / CONFIG_FILE
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot read {path}: {err}", f"a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}") from None
    if not isinstance(card, dict) or card.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"{path} is not a tl-bench model ({BUNDLE_FORMAT})", "a folder written by `tl-bench export`")
    return card


def load_bundle(folder: str | Path) -> Bundle:
    """Rebuild the model from ``model.safetensors`` and ``config.json`` (eval mode, CPU)."""
    folder = Path(folder)
    card = read_card(folder)
    config = TrialConfig.from_dict(card["config"])
    # The trained weights replace whatever the backbone started from.
    model = build_model_for(config, int(card["num_classes"]), load_weights=False,
                            adapters_merged=bool(card.get("adapters_merged", False)))
    try:
        state = load_file(str(folder / WEIGHTS_FILE), device="cpu")
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, SafetensorError) as err:
        raise WeightsError(
            f"cannot load {folder / WEIGHTS_FILE}: {first_line(err)}", "the weights written with its config.json"
        ) from None
    return Bundle(model.eval(), config, list(card["class_names"]), dict(card["preprocessing"]), card)


__all__ = [
    "BUNDLE_FORMAT",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "Bundle",
    "InferenceNetwork",
    "load_bundle",
    "preprocessing_of",
    "read_card",
    "save_bundle",
]
