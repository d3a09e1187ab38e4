"""``tl-bench list backbones|necks|heads`` and ``tl-bench inspect BACKBONE``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tl_bench.cli.app import app, list_app, print_json
from tl_bench.config import CHECKPOINT_SUFFIXES, parse_freeze_depth

_JSON = typer.Option(False, "--json", help="One JSON object instead of a table.")


def _describe(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


@list_app.command("backbones")
def list_backbones(
    pattern: str = typer.Argument("*", metavar="PATTERN",
                                  help="Wildcard filter, e.g. 'resnet*'; a plain word matches anywhere."),
    pretrained: bool = typer.Option(False, "--pretrained", help="List timm's pretrained tags (arch.tag) instead."),
    json_out: bool = _JSON,
) -> None:
    """timm models a study can name as backbone."""
    import timm

    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    names = timm.list_pretrained(pattern) if pretrained else timm.list_models(pattern)
    if json_out:
        print_json({"backbones": names, "count": len(names)})
        return
    # one name per line so the output pipes into grep and wc
    typer.echo("\n".join(names) if names else f"no timm model matches {pattern!r}")


def _registry(kind: str, registry: dict[str, type], json_out: bool) -> None:
    rows = {name: _describe(cls) for name, cls in registry.items()}
    if json_out:
        print_json({kind: rows})
        return
    table = Table(kind[:-1], "description")
    for name, text in rows.items():
        table.add_row(name, text)
    Console().print(table)


@list_app.command("necks")
def list_necks(json_out: bool = _JSON) -> None:
    """Necks: how backbone features become one vector."""
    from tl_bench.models import NECKS

    _registry("necks", NECKS, json_out)


@list_app.command("heads")
def list_heads(json_out: bool = _JSON) -> None:
    """Heads: how that vector becomes class scores."""
    from tl_bench.models import HEADS

    _registry("heads", HEADS, json_out)


@app.command("inspect")
def inspect_model(
    backbone: str = typer.Argument(..., metavar="BACKBONE", help="Any timm model name, e.g. resnet50 or test_vit."),
    neck: str = typer.Option("gap", "--neck", help="Neck registry name (see: tl-bench list necks)."),
    head: str = typer.Option("linear", "--head", help="Head registry name (see: tl-bench list heads)."),
    freeze_depth: str = typer.Option("0", "--freeze-depth", help="Leading stages to freeze: 0..n_stages or 'all'."),
    num_classes: int = typer.Option(1000, "--num-classes", help="Output classes of the head."),
    img_size: Optional[int] = typer.Option(None, "--img-size", help="Square input size (default: timm's)."),
    weights: str = typer.Option(
        "scratch", "--weights", help=f"scratch, pretrained, timm:TAG or a {'/'.join(CHECKPOINT_SUFFIXES)} file."
    ),
    neck_dim: int = typer.Option(256, "--neck-dim", help="Output width of projecting necks."),
    head_hidden: int = typer.Option(256, "--head-hidden", help="Hidden width of the mlp head."),
    drop_path_rate: float = typer.Option(0.0, "--drop-path-rate", help="Stochastic depth of the backbone."),
    layer_decay: Optional[float] = typer.Option(
        None, "--layer-decay", help="Show the per-layer lr scales this layer-wise lr decay gives."
    ),
    adaptation: str = typer.Option(
        "full", "--adaptation", help="What trains in the frozen stages: full, bitfit, norm, lora, ia3, prompt."
    ),
    lora_r: int = typer.Option(8, "--lora-r", help="Rank of LoRA adapters."),
    lora_targets: str = typer.Option(
        "all", "--lora-targets", help="LoRA/IA3 layers: all, or '+'-joined attn, mlp, conv or module names."
    ),
    prompt_tokens: int = typer.Option(8, "--prompt-tokens", help="Prompt tokens of adaptation prompt."),
    json_out: bool = _JSON,
) -> None:
    """Build one combination and show its stages (which are frozen), parameter counts and FLOPs."""
    from tl_bench.models import (
        AdaptationSettings,
        build_model,
        check_backbone,
        count_params,
        default_img_size,
        measure_flops,
    )

    _check_recipe(drop_path_rate=drop_path_rate, layer_decay=layer_decay, adaptation=adaptation, lora_r=lora_r,
                  prompt_tokens=prompt_tokens)
    check_backbone(backbone)
    size = img_size or default_img_size(backbone)
    # text that is no depth goes on as text: the backbone refuses it naming its own range
    model = build_model(
        backbone,
        num_classes=num_classes,
        img_size=size,
        weights=weights,
        freeze_depth=parse_freeze_depth(freeze_depth),  # type: ignore[arg-type]
        neck=neck,
        head=head,
        neck_dim=neck_dim,
        head_hidden=head_hidden,
        drop_path_rate=drop_path_rate,
        adaptation=AdaptationSettings(adaptation, lora_r=lora_r, lora_targets=lora_targets,
                                      prompt_tokens=prompt_tokens),
    )
    bb = model.backbone
    info: dict[str, Any] = {
        "backbone": backbone,
        "weights": weights,
        "neck": neck,
        "head": head,
        "num_classes": num_classes,
        "img_size": size,
        "n_stages": bb.n_stages,
        "freeze_depth": bb.freeze_depth,
        "fully_frozen": bb.fully_frozen,
        "adaptation": bb.adaptation,
        "adapter_params": sum(p.numel() for p in bb.adapter_parameters()),
        "adapter_targets": bb.adapter.targets if bb.adapter is not None else [],
        **count_params(model),
        **measure_flops(model, size),
        "stages": [asdict(s) for s in bb.stages],
        "dropped_modules": bb.dropped_modules,
        "neck_takes": bb.pre_logits.names if bb.pre_logits is not None else [],
        "neck_note": _neck_note(model),
        "weights_report": bb.load_report.summary() if bb.load_report else None,
        "drop_path_rate": drop_path_rate,
        "drop_path_modules": _drop_path_rates(model),
        "layer_decay": layer_decay,
        "layer_lr_scales": _layer_scales(model, layer_decay) if layer_decay is not None else None,
    }
    if json_out:
        print_json(info)
        return
    _print_inspect(info)


def _neck_note(model: Any) -> str:
    """What the neck reads, where it is more than a pooling of the backbone's output."""
    bb, neck = model.backbone, model.neck
    if bb.pre_logits is not None:
        params = list(neck.parameters())
        state = "no parameters" if not params else "trainable" if params[0].requires_grad else "frozen"
        taken = ", ".join(bb.pre_logits.names)
        path = f"timm's {type(bb.model).__name__}.forward_head(pre_logits=True)"
        return f"{path}, with {taken} from the backbone ({state})"
    if type(neck).needs_class_token:
        return f"the class token, first of {bb.num_prefix_tokens} prefix tokens"
    if bb.dropped_modules:
        return f"forward_features without {', '.join(bb.dropped_modules)} (dropped: neck 'timm' keeps them)"
    return ""


def _check_recipe(**values: Any) -> None:
    from tl_bench.errors import TLBenchError
    from tl_bench.spec.fields import FieldValueError, check_value

    for name, value in values.items():
        try:
            check_value(name, value)
        except FieldValueError as err:
            raise TLBenchError(f"--{name.replace('_', '-')} {value!r} is not accepted", err.accepted) from None


def _drop_path_rates(model: Any) -> list[float]:
    """The stochastic-depth rate of each DropPath module, in model order (timm raises it with depth)."""
    return [round(float(m.drop_prob), 4) for m in model.modules() if type(m).__name__ == "DropPath"]


def _layer_scales(model: Any, layer_decay: float) -> list[dict[str, Any]]:
    """Per backbone layer (stem first): its lr as a share of the top layer's, and its parameter count."""
    from tl_bench.config import TrialConfig
    from tl_bench.train.optim import layer_groups

    config = TrialConfig(dataset="-", backbone="-", lr=1.0, backbone_lr_scale=1.0, layer_decay=layer_decay)
    layers: dict[str, dict[str, Any]] = {}
    for group in layer_groups(model, model.backbone, config):
        if "layer_scale" in group:
            name = group["name"].removesuffix("_no_decay")
            entry = layers.setdefault(name, {"layer": name, "lr_scale": group["layer_scale"], "n_params": 0})
            entry["n_params"] += sum(p.numel() for p in group["params"])
    return sorted(layers.values(), key=lambda e: e["lr_scale"])


def _print_inspect(info: dict[str, Any]) -> None:
    console = Console()
    console.print(
        f"[bold]{info['backbone']}[/] ({info['weights']}) | {info['neck']} | {info['head']} -> "
        f"{info['num_classes']} classes at {info['img_size']}px; freeze depth "
        f"{info['freeze_depth']} of {info['n_stages']} stages"
    )
    stages = Table("stage", "modules", "params", "frozen", title="backbone stages (stem first)")
    for s in info["stages"]:
        stages.add_row(str(s["index"]), s["name"], f"{s['n_params']:,}", "yes" if s["frozen"] else "")
    console.print(stages)
    parts = Table("part", "params", title="parameters")
    for key in ("backbone", "neck", "head", "total", "trainable"):
        parts.add_row(key, f"{info['params_' + key]:,}")
    parts.add_row("trainable fraction", f"{info['trainable_fraction']:.2%}")
    console.print(parts)
    flops = Table("per image", "GFLOPs", title="FLOPs (FlopCounterMode; 1 multiply-add = 2)")
    flops.add_row("forward", f"{info['flops_fwd_per_image'] / 1e9:.4f}")
    flops.add_row("training step (forward + backward)", f"{info['flops_train_per_image'] / 1e9:.4f}")
    flops.add_row("training step on cached features", f"{info['flops_head_train_per_image'] / 1e9:.4f}")
    console.print(flops)
    if info["neck_note"]:
        console.print(f"neck {info['neck']}: {info['neck_note']}")
    if info["drop_path_modules"]:
        rates = info["drop_path_modules"]
        console.print(f"drop path (stochastic depth) {info['drop_path_rate']:g}: {len(rates)} DropPath modules, "
                      f"rates {min(rates):g} to {max(rates):g} (rising with depth)")
    if info["layer_lr_scales"]:
        layers = Table("layer", "lr scale", "params", title=f"lr decay {info['layer_decay']:g} per layer")
        for entry in info["layer_lr_scales"]:
            layers.add_row(entry["layer"].removeprefix("backbone_"), f"{entry['lr_scale']:.4g}", f"{entry['n_params']:,}")
        console.print(layers)
    if info["weights_report"]:
        console.print(f"weights: {info['weights_report']}")
    if info["adaptation"] != "full":
        targets = info["adapter_targets"]
        where = f" in {len(targets)} layers: {', '.join(targets)}" if targets else ""
        console.print(f"adaptation {info['adaptation']}: {info['adapter_params']:,} parameters of the frozen stages "
                      f"train{where}")


__all__ = ["inspect_model", "list_backbones", "list_heads", "list_necks"]
