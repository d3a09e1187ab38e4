"""Adaptation methods on real tiny timm models: what trains, what it counts, what merges."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tl_bench.errors import ModelBuildError
from tl_bench.models import AdaptationSettings, adapter_mb, build_model, count_params, merged_adapters
from tl_bench.models.accounting import adapter_state

BACKBONES = ["test_vit", "test_resnet", "test_convnext", "test_efficientnet"]
METHODS = ["bitfit", "norm", "lora", "ia3", "prompt"]


def _build(backbone: str, method: str, depth: object = "all", **settings: object):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_model(backbone, num_classes=3, img_size=32, freeze_depth=depth,  # type: ignore[arg-type]
                       adaptation=AdaptationSettings(method, **settings))  # type: ignore[arg-type]


def _intended(model: nn.Module, method: str) -> set[str]:
    """The backbone parameters ``method`` should train with every stage frozen, found independently
    of tl_bench's adaptation code: by name and module type."""
    timm_model = model.backbone.model
    out = set()
    for module_name, module in timm_model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if method == "bitfit" and name == "bias" and "lora_" not in full:
                out.add(full)
            if method == "norm" and isinstance(module, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)):
                out.add(full)
            if method == "lora" and (".lora_A." in full or ".lora_B." in full):
                out.add(full)
            if method == "ia3" and ".ia3_l." in full:
                out.add(full)
            if method == "prompt" and full == "norm_pre.tokens":
                out.add(full)
    return out


def _fits(backbone: str, method: str) -> bool:
    return method != "prompt" or backbone == "test_vit"


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("method", METHODS)
def test_exactly_the_methods_parameters_receive_gradients(backbone: str, method: str) -> None:
    if not _fits(backbone, method):
        with pytest.raises(ModelBuildError, match="needs a ViT-like backbone with tokens"):
            _build(backbone, method)
        return
    model = _build(backbone, method).train()
    model(torch.randn(4, 3, 32, 32)).logsumexp(1).sum().backward()
    moved = {n for n, p in model.backbone.model.named_parameters() if p.grad is not None}
    intended = _intended(model, method)
    assert intended, "the method opens something"
    assert moved == intended
    assert all(p.grad is not None for p in [*model.neck.parameters(), *model.head.parameters()])
    # the counts: trainable = the method's parameters + neck + head, counted without tl_bench
    named = dict(model.backbone.model.named_parameters())
    head_side = sum(p.numel() for p in [*model.neck.parameters(), *model.head.parameters()])
    assert count_params(model)["params_trainable"] == sum(named[n].numel() for n in intended) + head_side


def test_lora_counts_agree_with_peft_and_with_the_rank_arithmetic() -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils import get_peft_model_state_dict

    model = _build("test_vit", "lora", lora_r=4, lora_targets="attn")
    layers = [m for m in model.backbone.model.modules() if isinstance(m, BaseTunerLayer)]
    assert len(layers) == 12  # qkv and proj of 6 blocks
    by_rank = sum(4 * (m.base_layer.in_features + m.base_layer.out_features) for m in layers)
    adapter = sum(p.numel() for p in model.backbone.adapter_parameters())
    peft_own = sum(t.numel() for t in get_peft_model_state_dict(model.backbone.model).values())
    assert adapter == by_rank == peft_own == 9216


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_merged_adapters_serve_the_same_outputs_as_plain_layers(backbone: str, method: str) -> None:
    model = _build(backbone, method)
    with torch.no_grad():  # adapters start as the identity: move them so the merge has work to do
        for p in model.backbone.adapter_parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    served = merged_adapters(model)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(served(x), model(x), atol=1e-5)
    plain = build_model(backbone, num_classes=3, img_size=32, freeze_depth="all")
    assert sorted(served.state_dict()) == sorted(plain.state_dict())  # the base architecture, nothing added
    assert served.backbone.adapters_merged and not model.backbone.adapters_merged


def test_prompt_tokens_change_the_output_and_are_the_only_backbone_weights_that_move() -> None:
    model = _build("test_vit", "prompt", prompt_tokens=3).train()
    assert model.backbone.num_prefix_tokens == 1 + 3
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        shift = torch.randn_like(model.backbone.model.norm_pre.tokens)  # not uniform: LayerNorm removes that
        model.backbone.model.norm_pre.tokens.add_(shift)
        assert not torch.allclose(model(x), out)
        model.backbone.model.norm_pre.tokens.sub_(shift)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(x).logsumexp(1).sum().backward()
    optimizer.step()
    moved = {n for n, p in model.backbone.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {"model.norm_pre.tokens"}


def test_prompts_are_refused_for_necks_that_read_timm_maps() -> None:
    with pytest.raises(ModelBuildError, match="cannot feed neck 'timm'"):
        build_model("test_vit", num_classes=3, img_size=32, freeze_depth="all", neck="timm",
                    adaptation=AdaptationSettings("prompt"))


def test_a_method_needs_frozen_stages_and_later_stages_train_fully() -> None:
    with pytest.raises(ModelBuildError, match="freeze depth 0 freezes none"):
        _build("test_resnet", "bitfit", depth=0)
    model = _build("test_resnet", "bitfit", depth=2)
    stages = model.backbone.stage_params
    named = dict(model.backbone.model.named_parameters())
    frozen = [n for names in stages[:2] for n in names]
    assert all(named[n].requires_grad == n.endswith(".bias") for n in frozen)
    assert all(named[n].requires_grad for names in stages[2:] for n in names)


def test_lora_targets_resolve_per_family_and_refuse_a_miss() -> None:
    conv = _build("test_resnet", "lora", lora_targets="conv").backbone.adapter
    assert conv.targets and all("conv" in t or "downsample" in t for t in conv.targets)
    named = _build("test_vit", "lora", lora_targets="fc1").backbone.adapter
    assert named.targets == [f"blocks.{i}.mlp.fc1" for i in range(6)]
    with pytest.raises(ModelBuildError, match="lora_targets 'attn' names no Linear"):
        _build("test_resnet", "lora", lora_targets="attn")


def test_adapter_size_is_what_a_task_stores() -> None:
    probe = build_model("test_resnet", num_classes=3, img_size=32, freeze_depth="all")
    head_bytes = sum(p.numel() * 4 for p in [*probe.neck.parameters(), *probe.head.parameters()])
    assert adapter_mb(probe) == pytest.approx(head_bytes / 2**20)
    lora = _build("test_resnet", "lora")
    state = adapter_state(lora)
    assert all("lora_" in k or k.startswith(("neck.", "head.")) for k in state)
    assert adapter_mb(lora) > adapter_mb(probe)
    # recalibrated frozen BatchNorm statistics are stored too
    assert adapter_mb(probe, bn_recalibrated=True) > adapter_mb(probe)
