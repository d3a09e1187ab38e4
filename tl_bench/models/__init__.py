"""The composable transfer model: timm backbone x freeze depth x neck x head, and what it costs."""

from __future__ import annotations

from tl_bench.models.accounting import count_params, measure_flops
from tl_bench.models.backbone import (
    Backbone,
    check_backbone,
    count_stages,
    create_backbone,
    default_img_size,
    frozen_stage_count,
)
from tl_bench.models.checkpoint import save_backbone_checkpoint
from tl_bench.models.heads import HEADS, Head, build_head, check_head
from tl_bench.models.model import TransferModel, build_model
from tl_bench.models.necks import NECKS, Neck, build_neck, check_neck
from tl_bench.models.stages import StageInfo
from tl_bench.models.weights import LoadReport

__all__ = [
    "HEADS",
    "NECKS",
    "Backbone",
    "Head",
    "LoadReport",
    "Neck",
    "StageInfo",
    "TransferModel",
    "build_head",
    "build_model",
    "build_neck",
    "check_backbone",
    "check_head",
    "check_neck",
    "count_params",
    "count_stages",
    "create_backbone",
    "default_img_size",
    "frozen_stage_count",
    "measure_flops",
    "save_backbone_checkpoint",
]
