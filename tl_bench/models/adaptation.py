"""Adaptation of the frozen stages: what trains inside them besides nothing.

Freeze depth k freezes the backbone's first k stages; an adaptation method
then opens a small part of exactly those stages to training (later stages
train fully, as without one):

- ``full``: nothing, freeze depth alone decides (the behaviour before methods existed).
- ``bitfit``: the bias terms (Zaken et al. 2022).
- ``norm``: the affine weights and biases of the normalisation layers; BatchNorm running
  statistics stay as the weights brought them (the stages stay in eval mode).
- ``lora`` and ``ia3``: Hugging Face peft's ``LoraModel`` and ``IA3Model`` injected in place
  into the Linear and (ungrouped) Conv2d layers that ``lora_targets`` names.
- ``prompt``: VPT-shallow, ``prompt_tokens`` learnable tokens inserted right after a ViT's
  class token, where timm puts register tokens, behind the position embedding; the pretrained
  weights load as they are, since the tokens come after loading.

Parameters of a method train at the head's learning rate (they start new or far from their
task), later stages at ``lr * backbone_lr_scale``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from tl_bench.errors import ModelBuildError

if TYPE_CHECKING:
    from tl_bench.config import TrialConfig

METHODS = ("full", "bitfit", "norm", "lora", "ia3", "prompt")
PEFT_METHODS = ("lora", "ia3")
TARGET_GROUPS = ("all", "attn", "mlp", "conv")
_ATTN_PARTS = ("attn", "attention")
_MLP_PARTS = ("mlp", "ffn")


@dataclass(frozen=True)
class AdaptationSettings:
    """The adaptation fields of a trial config; ``merged`` says LoRA or IA3 were merged into the
    weights already (a kept model), so a rebuild injects nothing."""

    method: str = "full"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "all"
    prompt_tokens: int = 8
    merged: bool = False

    @classmethod
    def of(cls, config: TrialConfig, *, merged: bool = False) -> AdaptationSettings:
        return cls(config.adaptation, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets,
                   config.prompt_tokens, merged)


@dataclass
class Adapter:
    """What a method opened in the frozen stages: its parameters (as named in the backbone's timm
    model), the modules that follow the training mode (peft's layers, for their dropout) and, for
    LoRA and IA3, peft's tuner, which merges them back."""

    method: str
    param_names: list[str]
    live_modules: list[nn.Module] = field(default_factory=list)
    tuner: Any = None  # peft.tuners.tuners_utils.BaseTuner
    targets: list[str] = field(default_factory=list)  # the layers LoRA or IA3 wrap

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        named = dict(model.named_parameters())
        return [named[n] for n in self.param_names]


# -- prompt tokens ----------------------------------------------------------
class PromptTokens(nn.Module):
    """Inserts learnable tokens after the first ``after`` tokens of (N, L, C), then runs ``inner``
    (the ViT's ``norm_pre``, often Identity), in the place of which it sits."""

    def __init__(self, inner: nn.Module, *, after: int, n_tokens: int, dim: int) -> None:
        super().__init__()
        self.inner = inner
        self.after = after
        # VPT's initialisation: uniform in a range set by the token width
        bound = (6.0 / (3.0 * dim)) ** 0.5
        self.tokens = nn.Parameter(torch.empty(1, n_tokens, dim).uniform_(-bound, bound))

    def extra_repr(self) -> str:
        return f"tokens={self.tokens.shape[1]}, after={self.after}"

    def forward(self, x: Tensor) -> Tensor:
        prompts = self.tokens.expand(x.shape[0], -1, -1).to(x.dtype)
        return self.inner(torch.cat([x[:, : self.after], prompts, x[:, self.after:]], dim=1))


def takes_prompts(model: nn.Module) -> bool:
    """Whether a timm model is a ViT whose token sequence can carry prompts (timm's
    VisionTransformer family: ``_pos_embed``, then ``norm_pre``, with prefix tokens counted)."""
    return all(hasattr(model, a) for a in ("_pos_embed", "norm_pre", "num_prefix_tokens", "embed_dim"))


def insert_prompts(model: nn.Module, n_tokens: int, backbone: str) -> None:
    """Put ``n_tokens`` prompt tokens after the model's prefix tokens. timm's own count of prefix
    tokens stays (its position embedding is resized by it); the backbone adds the prompts to the
    count it hands its neck (``prompt_count``), so pooling leaves them out as it does register tokens."""
    if not takes_prompts(model):
        raise ModelBuildError(f"adaptation 'prompt' needs a ViT-like backbone with tokens; {backbone} has none",
                              "bitfit, norm, lora or ia3 for it", lead="; use ")
    after = int(model.num_prefix_tokens)
    model.norm_pre = PromptTokens(model.norm_pre, after=after, n_tokens=n_tokens, dim=int(model.embed_dim))


def prompt_count(model: nn.Module) -> int:
    """How many prompt tokens ``insert_prompts`` put into a timm model (0 without)."""
    prompt = getattr(model, "norm_pre", None)
    return int(prompt.tokens.shape[1]) if isinstance(prompt, PromptTokens) else 0


def check_prompt_neck(neck: str, scales: int, keeps_head: bool) -> None:
    """Prompts reach only the final tokens tl-bench's necks read: necks that take timm's
    intermediate maps or timm's own pooling would count them as patches."""
    if scales > 1 or keeps_head:
        raise ModelBuildError(f"adaptation 'prompt' cannot feed neck {neck!r}, which reads timm's "
                              f"{'intermediate maps' if scales > 1 else 'own pooling'}",
                              "a neck reading the final tokens (gap, cls, mlp, ...)")


# -- which layers a method covers -------------------------------------------
def _covered_modules(model: nn.Module, covered: set[str]) -> dict[str, nn.Module]:
    """Modules with parameters of their own, all of them in the frozen stages (``covered``)."""
    out = {}
    for name, module in model.named_modules():
        own = [f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False)]
        if own and all(p in covered for p in own):
            out[name] = module
    return out


def _adaptable(module: nn.Module) -> bool:
    """Layers peft adapts here: Linear, and Conv2d without groups whose padding is static."""
    if isinstance(module, nn.Linear):
        return True
    return type(module) is nn.Conv2d and module.groups == 1  # Conv2dSame pads in forward: its LoRA branch would not


def _group_of(name: str) -> str:
    parts = name.split(".")
    if any(p in _ATTN_PARTS for p in parts):
        return "attn"
    if any(p in _MLP_PARTS for p in parts):
        return "mlp"
    return "conv"


def resolve_targets(model: nn.Module, covered: set[str], targets: str, backbone: str) -> list[str]:
    """Module names of the frozen stages that ``targets`` names: ``all``, or '+'-joined groups
    (``attn``, ``mlp``: Linear or Conv2d layers under such a module; ``conv``: the other Conv2d)
    and module names, matched as peft matches them (the name or its last parts)."""
    words = [w for w in re.split(r"[+,\s]+", targets.strip()) if w]
    candidates = {n: m for n, m in _covered_modules(model, covered).items() if _adaptable(m)}
    chosen = []
    for name, module in candidates.items():
        group = _group_of(name)
        if group == "conv" and not isinstance(module, nn.Conv2d):
            group = "linear"
        if any(w == "all" or w == group or name == w or name.endswith(f".{w}") for w in words):
            chosen.append(name)
    if not chosen:
        raise ModelBuildError(
            f"lora_targets {targets!r} names no Linear or ungrouped Conv2d layer in the frozen stages of {backbone}",
            "all, '+'-joined attn, mlp, conv, or module names such as "
            + ", ".join(sorted({n.rsplit('.', 1)[-1] for n in candidates})[:8]) or "all",
        )
    return chosen


# -- applying a method -------------------------------------------------------
def _peft_tuner(model: nn.Module, settings: AdaptationSettings, targets: list[str]) -> Any:
    from peft import IA3Config, IA3Model, LoraConfig, LoraModel

    pattern = "^(?:" + "|".join(re.escape(t) for t in targets) + ")$"
    if settings.method == "lora":
        config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                            target_modules=pattern, bias="none")
        return LoraModel(model, config, "default")
    # IA3 scales a layer's output, or for a feed-forward layer its input (the hidden activations)
    feedforward = [t for t in targets if t.rsplit(".", 1)[-1] == "fc2"]
    ff_pattern = "^(?:" + "|".join(re.escape(t) for t in feedforward) + ")$" if feedforward else []
    config = IA3Config(target_modules=pattern, feedforward_modules=ff_pattern)
    return IA3Model(model, config, "default")


def apply_adaptation(model: nn.Module, covered: set[str], settings: AdaptationSettings, backbone: str) -> Adapter | None:
    """Open ``settings.method``'s parameters among ``covered`` (the frozen stages' parameter names)
    of the timm ``model``; None for ``full``. Other parameters keep their ``requires_grad``."""
    method = settings.method
    if method == "full":
        return None
    if not covered:
        raise ModelBuildError(f"adaptation {method!r} applies to the frozen stages and freeze depth 0 freezes none",
                              "a freeze depth above 0 or 'all', or adaptation full")
    if method in ("bitfit", "norm"):
        if method == "bitfit":
            names = [n for n in covered if n.rsplit(".", 1)[-1] == "bias"]
        else:
            names = [f"{m}.{p}" if m else p for m, module in _covered_modules(model, covered).items()
                     if "norm" in type(module).__name__.lower() for p, _ in module.named_parameters(recurse=False)]
        if not names:
            what = "bias" if method == "bitfit" else "normalisation layer"
            raise ModelBuildError(f"adaptation {method!r}: the frozen stages of {backbone} hold no {what}",
                                  "another adaptation for it")
        params = dict(model.named_parameters())
        for n in names:
            params[n].requires_grad_(True)
        return Adapter(method, sorted(names))
    if method == "prompt":
        prompt = getattr(model, "norm_pre", None)
        if not isinstance(prompt, PromptTokens):
            raise ModelBuildError(f"adaptation 'prompt' needs a ViT-like backbone with tokens; {backbone} has none",
                                  "bitfit, norm, lora or ia3 for it", lead="; use ")
        prompt.tokens.requires_grad_(True)
        return Adapter(method, ["norm_pre.tokens"])
    if settings.merged:
        return Adapter(method, [])  # merged into the weights: the model is a plain timm model
    targets = resolve_targets(model, covered, settings.lora_targets, backbone)
    before = {id(p): p.requires_grad for p in model.parameters()}
    tuner = _peft_tuner(model, settings, targets)
    for p in model.parameters():
        if id(p) in before:
            p.requires_grad_(before[id(p)])  # peft froze every other parameter: later stages train again
    names = [n for n, p in model.named_parameters() if id(p) not in before]
    for n in names:
        model.get_parameter(n).requires_grad_(True)
    from peft.tuners.tuners_utils import BaseTunerLayer

    live = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    return Adapter(method, names, live, tuner, targets)


def merged_adapters(model: nn.Module) -> nn.Module:
    """A copy of a TransferModel whose LoRA or IA3 layers are merged into their base layers
    (``merge_and_unload``): a plain timm backbone that serves at the cost of the unadapted one.
    Other methods come back as the same model (their parameters are the model's own)."""
    import copy

    adapter = getattr(model.backbone, "adapter", None)
    if adapter is None or adapter.tuner is None:
        return model
    out = copy.deepcopy(model)
    out_adapter = out.backbone.adapter
    out.backbone.model = out_adapter.tuner.merge_and_unload()
    if hasattr(out.backbone.model, "peft_config"):
        del out.backbone.model.peft_config
    out.backbone.set_adapter(Adapter(out_adapter.method, []), merged=True)
    return out


__all__ = [
    "METHODS",
    "PEFT_METHODS",
    "TARGET_GROUPS",
    "AdaptationSettings",
    "Adapter",
    "PromptTokens",
    "apply_adaptation",
    "check_prompt_neck",
    "insert_prompts",
    "merged_adapters",
    "prompt_count",
    "resolve_targets",
    "takes_prompts",
]
