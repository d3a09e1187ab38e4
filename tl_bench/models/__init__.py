"""The composable transfer model: timm backbone x freeze depth x neck x head, and what it costs."""

from __future__ import annotations

from tl_bench.models.accounting import adapter_mb, count_params, measure_flops
from tl_bench.models.adaptation import METHODS, AdaptationSettings, merged_adapters
from tl_bench.models.backbone import (
    Backbone,
    check_backbone,
    count_stages,
    create_backbone,
    default_img_size,
    frozen_stage_count,
)
from tl_bench.models.bundle import Bundle, InferenceNetwork, load_bundle, save_bundle
from tl_bench.models.checkpoint import save_backbone_checkpoint, verify_checkpoint
from tl_bench.models.heads import HEADS, Head
from tl_bench.models.model import TransferModel, build_model, build_model_for
from tl_bench.models.necks import NECKS, Neck, check_neck_fits
from tl_bench.models.part_registry import Registry
from tl_bench.models.stages import StageInfo
from tl_bench.models.timm_model import backbone_has_class_token, backbone_takes_prompts
from tl_bench.models.weights import LoadReport

__all__ = [
    "METHODS",
    "HEADS",
    "AdaptationSettings",
    "NECKS",
    "Backbone",
    "Bundle",
    "Head",
    "InferenceNetwork",
    "LoadReport",
    "Neck",
    "Registry",
    "StageInfo",
    "TransferModel",
    "adapter_mb",
    "build_model",
    "backbone_has_class_token",
    "backbone_takes_prompts",
    "build_model_for",
    "check_backbone",
    "check_neck_fits",
    "count_params",
    "count_stages",
    "create_backbone",
    "default_img_size",
    "frozen_stage_count",
    "load_bundle",
    "measure_flops",
    "merged_adapters",
    "save_backbone_checkpoint",
    "save_bundle",
    "verify_checkpoint",
]
