"""Dashboard definitions (``dashboards/*.yaml``): which panels, which metrics, which filters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tl_bench.errors import OutputError
from tl_bench.report.columns import DEFAULT_METRIC
from tl_bench.report.leaderboard import Filters

Dimension = Literal["backbone", "weights", "freeze_depth", "neck", "head"]
Cost = Literal["train_time_s", "params_trainable", "adapter_mb", "params_total", "flops_fwd_per_image", "peak_mem_mb",
               "latency_ms"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeaderboardPanel(_Strict):
    kind: Literal["leaderboard"]
    title: str = "Leaderboard"
    top: int = Field(default=20, ge=1)  # rows per dataset
    metric: str | None = None  # ranks the table; default: the dashboard's metric


class ParetoPanel(_Strict):
    kind: Literal["pareto"]
    title: str = "Accuracy against training cost"
    cost: Cost = "train_time_s"
    metric: str | None = None
    log_x: bool = True  # costs span orders of magnitude


class HeatmapPanel(_Strict):
    kind: Literal["heatmap"]
    title: str = "Best accuracy: backbone x head"
    rows: Dimension = "backbone"
    columns: Dimension = "head"
    metric: str | None = None


class FreezeDepthPanel(_Strict):
    kind: Literal["freeze_depth"]
    title: str = "Accuracy against freeze depth"
    metric: str | None = None


class ScratchGainPanel(_Strict):
    """Per dataset and backbone, the best metric over ``rows`` x ``columns`` and the gain of pretrained weights
    over scratch: with ``rows: weights`` each weights row against the scratch row at the same column, else the
    best pretrained trial of each cell against the best scratch one."""

    kind: Literal["scratch_gain"]
    title: str = "Pretrained against scratch: weights x freeze depth"
    rows: Dimension = "weights"
    columns: Dimension = "freeze_depth"
    metric: str | None = None


class ImportancePanel(_Strict):
    kind: Literal["importance"]
    title: str = "Parameter importances (Optuna)"
    top: int = Field(default=12, ge=1)  # parameters shown per dataset


Panel = Annotated[
    Union[LeaderboardPanel, ParetoPanel, HeatmapPanel, FreezeDepthPanel, ScratchGainPanel, ImportancePanel],
    Field(discriminator="kind"),
]
PANEL_KINDS = {get_args(m.model_fields["kind"].annotation)[0]: m
               for m in (LeaderboardPanel, ParetoPanel, HeatmapPanel, FreezeDepthPanel, ScratchGainPanel,
                         ImportancePanel)}


class Dashboard(_Strict):
    title: str = "tl-bench dashboard"
    metric: str = DEFAULT_METRIC  # what "accuracy" means in every panel that does not say
    filters: Filters = Filters()  # ``study`` and ``dataset`` given on the command line win
    panels: list[Panel] = Field(min_length=1)


DEFAULT_DASHBOARD = Dashboard(
    title="tl-bench overview",
    panels=[
        LeaderboardPanel(kind="leaderboard"),
        ParetoPanel(kind="pareto"),
        HeatmapPanel(kind="heatmap", title="Best accuracy: backbone x head", rows="backbone", columns="head"),
        HeatmapPanel(kind="heatmap", title="Best accuracy: backbone x neck", rows="backbone", columns="neck"),
        FreezeDepthPanel(kind="freeze_depth"),
        ScratchGainPanel(kind="scratch_gain"),
        ScratchGainPanel(kind="scratch_gain", title="Pretrained against scratch: neck x head", rows="neck",
                         columns="head"),
        ImportancePanel(kind="importance"),
    ],
)


def _accepted(loc: tuple[str | int, ...]) -> str:
    """The field names accepted where a validation error points."""
    model: type[BaseModel] = Dashboard
    for part in loc[:-1]:
        if part == "filters":
            model = Filters
        elif isinstance(part, str) and part in PANEL_KINDS:
            model = PANEL_KINDS[part]
    return ", ".join(model.model_fields)


def _error(err: ValidationError, source: str) -> OutputError:
    """The first validation error as one line naming the field's path."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    where = f"dashboard {source}: {'.'.join(str(p) for p in loc) or '(top level)'}"
    if first["type"] == "extra_forbidden":
        return OutputError(f"{where}: unknown field", _accepted(loc))
    if first["type"] == "missing":
        return OutputError(f"{where}: required field missing", _accepted(loc))
    return OutputError(f"{where}: {first['msg']}")


def parse_dashboard(data: object, source: str = "<dict>") -> Dashboard:
    """Validate a parsed YAML mapping; a bad field is an ``OutputError`` naming its path."""
    if not isinstance(data, dict):
        raise OutputError(f"dashboard {source}: expected a mapping with title, metric, filters and panels")
    try:
        return Dashboard.model_validate(data)
    except ValidationError as err:
        raise _error(err, source) from None


def load_dashboard(path: str | Path | None) -> Dashboard:
    """Read a dashboard definition; ``None`` is the built-in overview (``dashboards/overview.yaml``)."""
    if path is None:
        return DEFAULT_DASHBOARD
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise OutputError(f"cannot read dashboard {path}: {err.strerror or err}",
                          "a YAML file such as dashboards/overview.yaml") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise OutputError(f"dashboard {path}:{where} is not valid YAML") from None
    return parse_dashboard(data, str(path))


__all__ = [
    "DEFAULT_DASHBOARD",
    "Dashboard",
    "FreezeDepthPanel",
    "HeatmapPanel",
    "ImportancePanel",
    "LeaderboardPanel",
    "ParetoPanel",
    "ScratchGainPanel",
    "load_dashboard",
    "parse_dashboard",
]
