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
    json_out: bool = _JSON,
) -> None:
    """Build one combination and show its stages (which are frozen), parameter counts and FLOPs."""
    from tl_bench.models import build_model, check_backbone, count_params, default_img_size, measure_flops

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
        **count_params(model),
        **measure_flops(model, size),
        "stages": [asdict(s) for s in bb.stages],
        "dropped_modules": bb.dropped_modules,
        "neck_takes": bb.pre_logits.names if bb.pre_logits is not None else [],
        "neck_note": _neck_note(model),
        "weights_report": bb.load_report.summary() if bb.load_report else None,
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
    if info["weights_report"]:
        console.print(f"weights: {info['weights_report']}")


__all__ = ["inspect_model", "list_backbones", "list_heads", "list_necks"]
