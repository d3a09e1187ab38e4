"""The plain-value records that cross module boundaries, and the grammar of their fields.

``TrialConfig`` is everything that determines one trial: it is what gets
logged, hashed for caches and reproduced. ``DataSettings``, the part of it that
says which data is loaded and how it is split, is also what a study's dataset
entry gives. ``TrialResult`` is everything the trainer measured. None of them
knows about Optuna or MLflow, and this module imports neither torch nor pydantic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Union

FreezeDepth = Union[int, Literal["all"]]  # leading backbone stages kept frozen: 0..n_stages, or "all"
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt")  # weights files a backbone loads and pretraining writes
# A pretrained backbone learns at a tenth of the head's rate unless told otherwise; a scratch one at the full rate.
DEFAULT_BACKBONE_LR_SCALE = 0.1
WeightsKind = Literal["scratch", "pretrained", "timm", "local", "file", "unknown"]
Augment = Literal["none", "light", "randaug", "trivialaug", "autoaug"]  # training-time input augmentation
# timm optimizer names (``timm.optim.create_optimizer_v2``) that suit fine-tuning on one device; timm's
# bitsandbytes/apex variants need extra packages and adahessian a second-order backward.
Optimizer = Literal[
    "adamw", "adam", "nadamw", "radamw", "adan", "adopt", "lamb", "lambw", "lion", "lars", "sgd", "momentum",
    "sgdw", "rmsproptf", "adabelief", "laprop", "madgrad", "novograd", "adafactorbv", "mars",
]
Schedule = Literal["cosine", "step", "plateau"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
# Running statistics of frozen BatchNorm layers: kept as the weights brought them, or re-estimated on the
# target's training images before training (AdaBN); auto re-estimates them for scratch weights only.
BnStats = Literal["auto", "keep", "recalibrate"]
# How the frozen stages adapt: not at all (full: freeze depth alone decides what trains), or through
# their biases, their normalisation affines, LoRA or IA3 adapters (Hugging Face peft), or prompt tokens.
Adaptation = Literal["full", "bitfit", "norm", "lora", "ia3", "prompt"]
# Values of earlier versions still read as they meant: ``augment: true`` was today's light augmentation.
LEGACY_VALUES: dict[str, dict[Any, Any]] = {"augment": {True: "light", False: "none"}}
# Fields added after results were stored: left out of ``TrialConfig.digest`` while at their default,
# and ``augment`` hashed in its earlier boolean spelling, so checkpoints named by a digest stay found.
_DIGEST_NEW_FIELDS = {
    "sched": "cosine", "decay_rate": 0.1, "decay_epochs": None, "patience_epochs": 1, "layer_decay": None,
    "drop_path_rate": 0.0, "mixup": 0.0, "cutmix": 0.0, "mixup_prob": 1.0, "ema_decay": None,
    "precision": "auto", "channels_last": "auto", "compile": False, "bn_stats": "auto",
    "adaptation": "full", "lora_r": 8, "lora_alpha": 16.0, "lora_dropout": 0.0, "lora_targets": "all",
    "prompt_tokens": 8,
}
# How serving cost is measured and how much disk a cache may take, not what a trial trains: never in the digest.
_DIGEST_IGNORED = frozenset({"latency_device", "latency_threads", "latency_batch_sizes", "boundary_cache_mb"})


@dataclass(frozen=True)
class Weights:
    """A parsed ``weights`` label: the one reader of its grammar, which every caller goes through.

    ``scratch``; ``pretrained`` (timm's default tag, ``tag`` empty); ``timm:TAG``; ``local:NAME``
    (a checkpoint the study's pretraining writes); a checkpoint ``path`` ending in one of
    ``CHECKPOINT_SUFFIXES``; anything else is ``unknown`` and left for the caller to refuse, since
    each words the refusal for its own context (a study field, a model option).
    """

    label: str  # as the user wrote it, the text logged and shown
    kind: WeightsKind
    tag: str = ""  # timm hub tag of "timm:TAG"; "" for timm's default tag
    name: str = ""  # pretraining entry of "local:NAME"
    path: str = ""  # the checkpoint file a "file" label names, as written

    @classmethod
    def parse(cls, label: str) -> Weights:
        """The parts of ``label``; never raises (an unreadable label is ``kind == "unknown"``)."""
        if label in ("scratch", "pretrained"):
            return cls(label, label)  # type: ignore[arg-type]
        if label.startswith("timm:"):
            return cls(label, "timm", tag=label[len("timm:"):])
        if label.startswith("local:"):
            return cls(label, "local", name=label[len("local:"):])
        if label.endswith(CHECKPOINT_SUFFIXES):
            return cls(label, "file", path=label)
        return cls(label, "unknown")

    @property
    def from_hub(self) -> bool:
        """Whether timm downloads these weights (``pretrained`` or ``timm:TAG``)."""
        return self.kind in ("pretrained", "timm")

    @property
    def short(self) -> str:
        """The label shown and recorded as ``weights`` (leaderboards, run and metric names): the label
        itself, except a checkpoint file: its stem and a digest of its absolute path
        (``myweights-3f2a1c``), short and safe in an MLflow name; the path goes to ``weights_path``."""
        if self.kind != "file":
            return self.label
        path = os.path.normpath(os.path.abspath(os.path.expanduser(self.path)))
        stem = os.path.basename(path)
        stem = stem[: -len(next(s for s in CHECKPOINT_SUFFIXES if stem.endswith(s)))]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._")[:40] or "weights"
        return f"{stem}-{hashlib.sha256(path.encode()).hexdigest()[:6]}"


def weights_kind(weights: str) -> WeightsKind:
    """What a ``weights`` label names: ``Weights.parse(weights).kind``."""
    return Weights.parse(weights).kind


def weights_label(weights: str) -> str:
    """How ``weights`` is shown and recorded: ``Weights.parse(weights).short``."""
    return Weights.parse(weights).short


def parse_freeze_depth(text: str) -> int | str:
    """A freeze depth written as text (a command-line option, an Optuna or MLflow parameter):
    digits become the int; other text ("all", or a typo the backbone refuses naming its range)
    comes back stripped."""
    text = text.strip()
    return int(text) if text.isdigit() else text


def split_label(train_size: object, val_size: object, split_seed: object) -> str:
    """How a dataset was split, in the words a leaderboard row shows: ``train=800 val=200 seed=0``
    (``all`` and ``default`` for unlimited sizes). Values may be numbers or their logged text."""

    def text(value: object, unset: str) -> str:
        if value is None or str(value) in ("None", "nan", ""):
            return unset
        return f"{float(value):g}" if str(value).replace(".", "", 1).isdigit() else str(value)

    return f"train={text(train_size, 'all')} val={text(val_size, 'default')} seed={text(split_seed, '0')}"


@dataclass(frozen=True, kw_only=True)
class DataSettings:
    """Which data a trial loads and how it is split: what a study's dataset entry fixes."""

    dataset: str  # registry name, e.g. "digits", "shapes", "imagefolder:/data/pets", "torchvision:CIFAR10"
    img_size: int = 32  # square input size fed to the backbone
    train_size: int | None = None  # stratified limit on the training split (None = all)
    val_size: int | None = None  # stratified limit on the validation split (None = default share)
    split_seed: int = 0  # seed of the train/val/test split, independent of the training seed
    data_root: str | None = None  # folder for torchvision datasets and caches
    download: bool = False  # allow torchvision downloads
    dataset_options: dict[str, Any] = field(default_factory=dict)  # per-dataset extras, e.g. shapes' num_classes


@dataclass(frozen=True, kw_only=True)
class TrialConfig(DataSettings):
    """Everything that determines one trial: its data settings, then the model, optimisation
    and execution."""

    # what is being transferred
    backbone: str  # any timm model name, e.g. "test_resnet", "resnet50"
    weights: str = "scratch"  # "scratch" | "pretrained" (timm default tag) | "timm:TAG" | "local:NAME" | checkpoint path
    weights_path: str | None = None  # resolved checkpoint file when weights names a local file
    freeze_depth: FreezeDepth = 0  # leading backbone stages kept frozen; "all" = linear probe
    bn_stats: BnStats = "auto"  # frozen BatchNorm statistics: keep, recalibrate on the training images, auto
    adaptation: Adaptation = "full"  # what trains inside the frozen stages (full: nothing; see models/adaptation.py)
    lora_r: int = 8  # rank of LoRA adapters
    lora_alpha: float = 16.0  # LoRA scaling numerator (scale = alpha / r)
    lora_dropout: float = 0.0  # dropout on the LoRA branch's input
    lora_targets: str = "all"  # LoRA/IA3 layers: all, or '+'-joined attn, mlp, conv, or module names (qkv, fc1)
    prompt_tokens: int = 8  # learnable tokens inserted after a ViT's class token (adaptation prompt)
    neck: str = "gap"  # neck registry key
    head: str = "linear"  # head registry key
    neck_dim: int = 256  # output width of necks that project (bottleneck, mlp, multiscale)
    head_hidden: int = 256  # hidden width of the mlp head
    # training
    augment: Augment = "none"  # random training augmentation (any but none disables the feature cache)
    optimizer: Optimizer = "adamw"  # built by timm's create_optimizer_v2
    lr: float = 1e-3  # learning rate of neck and head
    # backbone lr = lr * backbone_lr_scale; None: 1.0 for scratch weights (nothing to preserve), else 0.1
    backbone_lr_scale: float | None = None
    layer_decay: float | None = None  # backbone lr falls by this factor per timm layer group towards the stem
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    epochs: int = 5
    warmup_epochs: float = 0.0  # linear warmup before the schedule
    sched: Schedule = "cosine"  # cosine: per step to 0; step, plateau: timm's scheduler factory
    decay_rate: float = 0.1  # lr factor of each step decay (step) or plateau (plateau)
    decay_epochs: float | None = None  # step: epochs between decays (None = a third of the epochs)
    patience_epochs: int = 1  # plateau: epochs without a lower validation loss before a decay
    batch_size: int = 64
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max gradient norm; None = off
    drop_path_rate: float = 0.0  # stochastic depth of the backbone (timm.create_model)
    mixup: float = 0.0  # mixup alpha (timm Mixup); 0 = off
    cutmix: float = 0.0  # cutmix alpha (timm Mixup); 0 = off
    mixup_prob: float = 1.0  # share of batches mixed when mixup or cutmix is on
    ema_decay: float | None = None  # model EMA (timm ModelEmaV3); validation, selection and test use it
    seed: int = 0  # training seed (init of neck/head, shuffling, augmentation)
    select: Literal["last", "best_val"] = "best_val"  # which epoch's weights are tested
    # execution
    device: str = "auto"  # "auto" picks cuda when available
    precision: Precision = "auto"  # auto: bf16 autocast on CUDA where supported, else fp32
    channels_last: bool | Literal["auto"] = "auto"  # auto: on CUDA only
    compile: bool = False  # torch.compile the model (its compile time is reported apart)
    use_cache: bool = True  # use the frozen-feature (or freeze-boundary) cache when the config allows it
    boundary_cache_mb: int = 2048  # disk bound of the freeze-boundary cache; larger activations train uncached
    latency_device: str = "auto"  # where inference latency is measured: auto = the training device
    latency_threads: int | None = None  # CPU threads of that measurement (None: torch's count)
    latency_batch_sizes: tuple[int, ...] = (1, 32)  # batch sizes it is measured at

    def __post_init__(self) -> None:
        for name, legacy in LEGACY_VALUES.items():
            value = getattr(self, name)
            if isinstance(value, bool) and value in legacy:
                object.__setattr__(self, name, legacy[value])
        object.__setattr__(self, "latency_batch_sizes", tuple(int(b) for b in self.latency_batch_sizes))
        if self.backbone_lr_scale is None:
            scratch = Weights.parse(self.weights).kind == "scratch"
            object.__setattr__(self, "backbone_lr_scale", 1.0 if scratch else DEFAULT_BACKBONE_LR_SCALE)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def recalibrates_bn(self) -> bool:
        """Whether frozen BatchNorm statistics are re-estimated on the training images: always when asked,
        and for scratch weights under ``auto`` (random statistics would collapse frozen features)."""
        if self.bn_stats == "auto":
            return Weights.parse(self.weights).kind == "scratch"
        return self.bn_stats == "recalibrate"

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (mixup or cutmix on)."""
        return self.mixup > 0 or self.cutmix > 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrialConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown TrialConfig fields {unknown}; accepted: {sorted(names)}")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrialConfig":
        if "weights" in changes and "backbone_lr_scale" not in changes:
            # A scale that was the default of the old weights follows the new weights' default.
            was_default = self.backbone_lr_scale == dataclasses.replace(self, backbone_lr_scale=None).backbone_lr_scale
            changes["backbone_lr_scale"] = None if was_default else self.backbone_lr_scale
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """Stable short hash of every field (sorted JSON); fields added later count only when set."""
        values = {k: v for k, v in self.to_dict().items()
                  if k not in _DIGEST_IGNORED and (k not in _DIGEST_NEW_FIELDS or v != _DIGEST_NEW_FIELDS[k])}
        if values["augment"] in ("none", "light"):
            values["augment"] = values["augment"] == "light"
        blob = json.dumps(values, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class TrialResult:
    # accuracy (fractions in [0, 1])
    val_acc: float  # validation accuracy of the selected epoch
    test_acc: float  # test accuracy of the selected epoch's weights, measured once
    val_loss: float | None = None
    val_top5: float | None = None  # only when there are at least 5 classes
    test_balanced_acc: float | None = None
    test_per_class_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0  # 1-based epoch whose weights were tested
    epochs_run: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, train_loss, val_acc, val_loss, val_top5, lr
    # cost, measured
    # Cost fields do not depend on trial order: with the feature cache, the backbone pass that
    # computed a split's features is charged, as recorded with its cache entry, to every trial using it.
    setup_time_s: float = 0.0  # building the model and loading data, not part of training time
    train_time_s: float = 0.0  # wall clock of the training epochs, plus feature_time_s
    eval_time_s: float = 0.0  # wall clock of validation and test passes (their feature passes included)
    feature_time_s: float = 0.0  # the cached training split's backbone pass, as recorded (0 without the cache)
    train_throughput_ips: float = 0.0  # training images per second of train_time_s
    flops_fwd_per_image: float = 0.0  # whole model forward, FlopCounterMode
    flops_train_per_image: float = 0.0  # per image per training step as actually run (cache aware)
    train_flops_total: float = 0.0  # every training step, plus the cached training split's backbone pass
    peak_mem_mb: float = 0.0  # model weights and buffers + largest memory growth in training and evaluation
    # size
    params_total: int = 0
    params_trainable: int = 0
    params_backbone: int = 0
    params_neck: int = 0
    params_head: int = 0
    n_stages: int = 0
    trainable_fraction: float = 0.0
    adapter_mb: float = 0.0  # what a task stores beside the shared backbone: trained tensors, changed statistics
    # serving cost, measured on the tested model in eval mode as it would be served (train/serving.py)
    latency_ms: float = 0.0  # median milliseconds per image at batch 1
    infer_ips: float = 0.0  # images per second at the largest measured batch
    latency_cv: float = 0.0  # largest coefficient of variation of the repeated medians
    # how it ran
    bn_recalibrated: int = 0  # frozen BatchNorm layers whose statistics were re-estimated on the training images
    bn_pass_time_s: float = 0.0  # that label-free pass over the training split, included in train_time_s
    cache_used: bool = False
    cache_hit: bool = False  # the training split's features were found in the cache, not computed
    boundary_cached: int = 0  # freeze depth whose boundary activation was cached (0: the frozen stages ran every step)
    ema_tested: bool = False  # validation, selection and test used the EMA weights
    compile_time_s: float = 0.0  # torch.compile's first passes, apart from train_time_s
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def metrics(self) -> dict[str, float]:
        """Scalar numeric fields, for trackers (lists and strings left out)."""
        out: dict[str, float] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, bool):
                out[key] = float(value)
            elif isinstance(value, (int, float)) and value is not None:
                out[key] = float(value)
        return out


__all__ = [
    "Adaptation",
    "Augment",
    "BnStats",
    "CHECKPOINT_SUFFIXES",
    "LEGACY_VALUES",
    "Optimizer",
    "Precision",
    "Schedule",
    "DataSettings",
    "FreezeDepth",
    "TrialConfig",
    "TrialResult",
    "Weights",
    "WeightsKind",
    "parse_freeze_depth",
    "split_label",
    "weights_kind",
    "weights_label",
]
