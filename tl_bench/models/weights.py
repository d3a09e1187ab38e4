"""Where backbone weights come from: scratch, timm's hub tags, or a checkpoint file.

A ``weights`` string is one of ``scratch``, ``pretrained`` (timm's default
tag), ``timm:TAG``, ``local:NAME`` (the caller resolves NAME to
``weights_path``) or a path ending in one of ``tl_bench.config.CHECKPOINT_SUFFIXES``.
Files are read with ``weights_only=True``; either a bare backbone state dict
or a whole timm model state dict is accepted, with the classifier dropped.
"""

from __future__ import annotations

import logging
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import timm
import torch
from timm.models import get_pretrained_cfg, load_state_dict
from torch import nn

from tl_bench.config import CHECKPOINT_SUFFIXES, Weights
from tl_bench.errors import WeightsError, did_you_mean

_log = logging.getLogger(__name__)
# huggingface_hub prints its warnings (a download's retries) through its own handler; the root handler that
# MLflow's import installs printed each of them a second time.
logging.getLogger("huggingface_hub").propagate = False

# ".safetensors, .pth or .pt": how messages name the checkpoint files
SUFFIX_WORDS = f"{', '.join(CHECKPOINT_SUFFIXES[:-1])} or {CHECKPOINT_SUFFIXES[-1]}"
_ACCEPTED = (
    "'scratch', 'pretrained', 'timm:TAG', 'local:NAME' (with weights_path) "
    f"or a {'/'.join(CHECKPOINT_SUFFIXES)} file"
)
# wrappers a whole-model checkpoint may put around the backbone's own keys
_PREFIXES = ("", "backbone.model.", "model.", "backbone.", "encoder.")
_CLASSIFIER_NAMES = ("fc", "head", "classifier", "head.fc", "last_linear", "head_dist")


@dataclass(frozen=True)
class WeightsChoice:
    kind: Literal["scratch", "hub", "file"]
    tag: str = ""  # hub tag; "" means timm's default pretrained tag
    path: Path | None = None


@dataclass
class LoadReport:
    """What a checkpoint file gave the backbone."""

    path: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # classifier / unused head keys, expected to go

    def summary(self) -> str:
        return (
            f"{self.path}: loaded {self.loaded} tensors, {len(self.missing)} missing "
            f"{_preview(self.missing)}, {len(self.unexpected)} unexpected {_preview(self.unexpected)}, "
            f"{len(self.dropped)} classifier keys dropped"
        )


def _preview(keys: list[str], n: int = 3) -> str:
    if not keys:
        return ""
    more = f", +{len(keys) - n} more" if len(keys) > n else ""
    return "(" + ", ".join(keys[:n]) + more + ")"


def parse_weights(weights: str, weights_path: str | Path | None = None) -> WeightsChoice:
    """Where the weights come from, given the user's label (and resolved file, if any)."""
    parsed = Weights.parse(weights)
    if parsed.from_hub:
        if weights_path is not None:
            raise WeightsError(
                f"weights {weights!r} come from timm, but weights_path={str(weights_path)!r} was also given"
            )
        return WeightsChoice("hub", tag=parsed.tag)
    if weights_path is not None:
        # the resolved file wins over the label ("local:NAME", a path, or a default left in place)
        return WeightsChoice("file", path=Path(weights_path))
    if parsed.kind == "scratch":
        return WeightsChoice("scratch")
    if parsed.kind == "local":
        raise WeightsError(f"weights {weights!r} name a local checkpoint but no weights_path was resolved for it")
    if parsed.kind == "file":
        return WeightsChoice("file", path=Path(parsed.path))
    raise WeightsError(f"unknown weights {weights!r}{did_you_mean(weights, ('scratch', 'pretrained'))}", _ACCEPTED)


def check_hub_tag(name: str, tag: str) -> str:
    """The full ``arch.tag`` timm name to download; WeightsError when timm has no such weights."""
    arch = name.partition(".")[0]
    available = timm.list_pretrained(f"{arch}.*")
    if not tag:
        if "." in name:
            tag = name.partition(".")[2]
        elif not available:
            raise WeightsError(
                f"timm has no pretrained weights for {arch}", "weights 'scratch' or a checkpoint file", lead="; use "
            )
        else:
            return f"{arch}.{get_pretrained_cfg(arch).tag}"  # timm's default tag, named in errors
    full = f"{arch}.{tag}"
    if full not in available:
        tags = ", ".join(a.partition(".")[2] for a in available[:8]) or "none"
        raise WeightsError(f"timm has no pretrained tag {tag!r} for {arch}", tags, lead="; accepted tags: ")
    return full


def create_pretrained(name: str, **kwargs: object) -> nn.Module:
    """``timm.create_model(name, pretrained=True)``, with hub failures turned into one line."""
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except TypeError:
        raise  # a wrong keyword is the caller's business, not a download failure
    except Exception as err:  # hub, network and cache errors come in many types
        raise WeightsError(
            f"could not load pretrained weights {name!r}: the model hub or local cache was unreachable "
            f"or incomplete ({type(err).__name__})",
            "connect to the hub, fill the Hugging Face cache, or use weights 'scratch' or a checkpoint file",
            lead="; ",
        ) from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file; wrappers (state_dict, model, EMA, DDP prefixes) removed."""
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    if not str(path).endswith(CHECKPOINT_SUFFIXES):
        raise WeightsError(f"weights file {str(path)!r} is not {SUFFIX_WORDS}")
    try:
        state = load_state_dict(str(path), use_ema=True, device="cpu", weights_only=True)  # EMA when present, as timm
    except Exception as err:  # corrupt files and pickles with forbidden globals
        why = textwrap.shorten(" ".join(str(err).split()), 200, placeholder=" ...")
        raise WeightsError(f"weights file {str(path)!r} cannot be read ({type(err).__name__}: {why})") from None
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"weights file {str(path)!r} holds no tensors")
    return tensors


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = model.pretrained_cfg.get("classifier") if hasattr(model, "pretrained_cfg") else None
    names = (names,) if isinstance(names, str) else tuple(names or ())
    return tuple(f"{n}." for n in (*names, *_CLASSIFIER_NAMES))


def load_backbone_file(
    model: nn.Module, path: Path, dropped_modules: list[str], pre_logits: nn.Module | None = None
) -> LoadReport:
    """Load a checkpoint into a (classifier-free) timm model; report what matched.

    ``dropped_modules`` are head-side modules removed from ``model``; their keys
    are expected in whole-model checkpoints and dropped quietly. ``pre_logits`` (a
    ``PreLogits``) takes the keys of the head-side modules moved into it, when the
    file has them (a whole timm checkpoint); a backbone-only file leaves it as built.
    """
    state = read_state_dict(path)
    # PreLogits keeps timm's names under "model.": head.norm.weight is model.head.norm.weight there
    head_own = {k.removeprefix("model."): v for k, v in pre_logits.state_dict().items()} if pre_logits else {}
    own = {**model.state_dict(), **head_own}
    # the prefix under which most keys match is the one the checkpoint used
    prefix = max(_PREFIXES, key=lambda p: sum(k[len(p):] in own for k in state if k.startswith(p)))
    outside = [k for k in state if not k.startswith(prefix)]  # e.g. neck/head of a whole TransferModel
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    head = _classifier_prefixes(model) + tuple(f"{m}." for m in dropped_modules)
    dropped = [k for k in state if k not in own and k.startswith(head)]
    state = {k: v for k, v in state.items() if k not in dropped}
    if not any(k in own for k in state):
        raise WeightsError(
            f"weights file {str(path)!r} matches no key of {type(model).__name__} "
            f"(file keys {_preview(sorted(state))}, model keys {_preview(sorted(own))})"
        )
    bad = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    if bad:
        k = bad[0]
        raise WeightsError(
            f"weights file {str(path)!r} does not fit this backbone: {len(bad)} shape mismatches, "
            f"e.g. {k} {tuple(state[k].shape)} in file vs {tuple(own[k].shape)} in model"
        )
    loaded = sum(k in own for k in state)
    if pre_logits is not None:
        pre_logits.load_state_dict({f"model.{k}": v for k, v in state.items() if k in head_own}, strict=False)
        state = {k: v for k, v in state.items() if k not in head_own}
    result = model.load_state_dict(state, strict=False)
    report = LoadReport(
        path=str(path),
        loaded=loaded,
        # batch-norm step counters are bookkeeping, not weights
        missing=[k for k in result.missing_keys if not k.endswith("num_batches_tracked")],
        unexpected=list(result.unexpected_keys),
        dropped=dropped + outside,
    )
    if report.missing or report.unexpected:
        _log.warning("partial weights: %s", report.summary())
    return report


__all__ = [
    "SUFFIX_WORDS",
    "LoadReport",
    "WeightsChoice",
    "check_hub_tag",
    "create_pretrained",
    "load_backbone_file",
    "parse_weights",
    "read_state_dict",
]
