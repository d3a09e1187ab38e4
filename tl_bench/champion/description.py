"""A registered version's description: what the model is, in the words of the leaderboard.

The MLflow registry shows a version's description as Markdown on its page. tl-bench writes
there the setting (backbone, weights, freeze depth, adaptation, neck, head), the recipe's key
fields (and every other field that differs from TrialConfig's default), the score that chose
it with the seeds behind it, and where it came from (trial, run, logged model). Values are
written as the run's params show them, so the description and the run page read the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tl_bench.config import TrialConfig
from tl_bench.evaluation import SettingScore
from tl_bench.tracking.names import config_params

# Always shown: what the recipe trains with.
RECIPE_FIELDS = ("optimizer", "lr", "epochs", "batch_size", "sched", "weight_decay", "augment", "img_size")
# Part of the setting's own line, not of the recipe.
SETTING_FIELDS = ("backbone", "weights", "weights_path", "freeze_depth", "adaptation", "neck", "head")
# Which data and how a run ran, not what was trained: never in the recipe.
_NOT_RECIPE = frozenset({"dataset", "train_size", "val_size", "split_seed", "data_root", "download", "dataset_options",
                         "seed", "device", "precision", "channels_last", "compile", "use_cache", "boundary_cache_mb",
                         "latency_device", "latency_threads", "latency_batch_sizes"})


@dataclasses.dataclass(frozen=True)
class SeedRun:
    """One seed behind a score: its trial, its seed and its validation accuracy."""

    trial: int
    seed: str
    val_acc: float


def setting_line(params: Mapping[str, str], *, n_stages: str | int | None = None) -> str:
    """``test_resnet (pretrained), freeze 2 of 4 stages, adaptation full, gap neck, linear head``."""
    weights = params.get("weights", "?")
    if params.get("weights_path", "None") not in ("None", ""):
        weights += f": {params['weights_path']}"
    stages = f" of {n_stages} stages" if n_stages not in (None, "") else ""
    return (f"{params.get('backbone', '?')} ({weights}), freeze {params.get('freeze_depth', '?')}{stages}, "
            f"adaptation {params.get('adaptation', 'full')}, {params.get('neck', '?')} neck, "
            f"{params.get('head', '?')} head")


def recipe_fields(params: Mapping[str, str]) -> dict[str, str]:
    """The key recipe fields, then every other trained-with field whose value is not TrialConfig's default."""
    defaults = config_params(_defaults())
    shown = {k: params[k] for k in RECIPE_FIELDS if k in params}
    known = {f.name for f in dataclasses.fields(TrialConfig)}
    for key, value in params.items():
        if key in shown or key in SETTING_FIELDS or key in _NOT_RECIPE:
            continue
        if key not in known or value != defaults.get(key):
            shown[key] = value
    return shown


def _defaults() -> dict[str, object]:
    """TrialConfig's default values (fields without one are left out)."""
    out: dict[str, object] = {}
    for field in dataclasses.fields(TrialConfig):
        if field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = field.default_factory()
    return out


def version_description(
    headline: str,
    params: Mapping[str, str],
    *,
    score: SettingScore | None = None,
    seeds: Sequence[SeedRun] = (),
    n_stages: str | int | None = None,
    test_acc: float | None = None,
    trial: int | str | None = None,
    run_id: str = "",
    model_id: str = "",
) -> str:
    """The Markdown description of a registered version (see the module docstring)."""
    lines = [headline, "", f"**Setting**: {setting_line(params, n_stages=n_stages)}", ""]
    recipe = ", ".join(f"{k} {v}" for k, v in recipe_fields(params).items())
    lines += [f"**Recipe**: {recipe}", ""]
    if score is not None:
        text = (f"**Score**: val_acc lcb {score.val_acc_lcb:.4f} (one-sided 95 % bound), mean {score.val_acc:.4f} "
                f"over {score.n_seeds} seed{'' if score.n_seeds == 1 else 's'}")
        if seeds:
            text += ": " + ", ".join(f"seed {s.seed} (trial {s.trial}, {s.val_acc:.4f})" for s in seeds)
        lines += [text, ""]
    if test_acc is not None:
        lines += [f"**Test accuracy**: {test_acc:.4f} (reported, never used to choose)", ""]
    origin = [f"trial {trial}" if trial not in (None, "") else "", f"run `{run_id}`" if run_id else "",
              f"logged model `{model_id}`" if model_id else ""]
    if any(origin):
        lines += ["**From**: " + ", ".join(o for o in origin if o)]
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["RECIPE_FIELDS", "SETTING_FIELDS", "SeedRun", "recipe_fields", "setting_line", "version_description"]
