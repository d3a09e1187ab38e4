"""``tl-bench inspect`` shows the recipe fields that change the model: drop path and layer-wise lr decay."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tl_bench.cli import app
from tl_bench.errors import TLBenchError

runner = CliRunner()


def test_inspect_shows_drop_path_rates_and_layer_scales() -> None:
    args = ["inspect", "test_vit", "--img-size", "32", "--drop-path-rate", "0.2", "--layer-decay", "0.5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    rates = info["drop_path_modules"]
    assert rates and max(rates) == pytest.approx(0.2) and rates == sorted(rates)
    scales = [entry["lr_scale"] for entry in info["layer_lr_scales"]]
    assert scales[-1] == 1.0 and scales == pytest.approx([0.5 ** (len(scales) - 1 - i) for i in range(len(scales))])
    assert sum(entry["n_params"] for entry in info["layer_lr_scales"]) == info["params_backbone"]
    table = runner.invoke(app, args[:-1])
    assert "DropPath" in table.output and "lr decay 0.5 per layer" in table.output


def test_inspect_without_recipe_options_shows_no_drop_path() -> None:
    info = json.loads(runner.invoke(app, ["inspect", "test_vit", "--img-size", "32", "--json"]).output)
    assert info["drop_path_modules"] == [] and info["layer_lr_scales"] is None


def test_inspect_refuses_a_bad_layer_decay_in_one_line() -> None:
    result = runner.invoke(app, ["inspect", "test_vit", "--img-size", "32", "--layer-decay", "1.5"])
    assert isinstance(result.exception, TLBenchError) and result.exception.exit_code == 2
    assert str(result.exception).startswith("--layer-decay 1.5 is not accepted; accepted: a number > 0 and <= 1")
