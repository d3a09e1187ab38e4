"""Temperature scaling: fitted on validation logits, it lowers NLL and leaves calibrated logits alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tl_bench.evaluation import build_report, fit_temperature, nll


def calibrated(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from the logits' own softmax: calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, k, generator=g, dtype=torch.float64)
    labels = torch.multinomial(logits.softmax(dim=1), 1, generator=g).squeeze(1)
    return logits, labels


def test_calibrated_logits_keep_a_temperature_near_one() -> None:
    logits, labels = calibrated(20_000, 5, seed=0)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(("scale", "expected"), [(3.0, 3.0), (0.5, 0.5)])
def test_over_and_under_confident_logits_get_the_temperature_that_undoes_them(scale: float, expected: float) -> None:
    logits, labels = calibrated(20_000, 5, seed=1)
    t = fit_temperature(scale * logits, labels)
    assert t == pytest.approx(expected, rel=0.08)
    assert nll(scale * logits, labels, t) < nll(scale * logits, labels) - 0.05


def test_temperature_fitted_on_validation_lowers_nll_and_ece_on_held_out_logits() -> None:
    val_logits, val_labels = calibrated(5_000, 10, seed=2)
    test_logits, test_labels = calibrated(5_000, 10, seed=3)
    report = build_report(4 * test_logits, test_labels, val_logits=4 * val_logits, val_labels=val_labels)
    s = report.summary
    assert report.temperature == pytest.approx(4.0, rel=0.1)
    assert s["temperature"] == fit_temperature(4 * val_logits, val_labels)  # fitted on validation only
    assert s["temperature_fit_on"] == "validation"
    assert s["nll_scaled"] < s["nll"] and s["ece_scaled"] < s["ece"] / 3
    assert s["nll"] == pytest.approx(F.cross_entropy(4 * test_logits, test_labels).item())
    assert s["top1"] == pytest.approx((test_logits.argmax(1) == test_labels).double().mean().item())


def test_the_fit_never_makes_nll_worse_than_no_scaling() -> None:
    # All right with large margins: NLL keeps falling as T -> 0, so the fit stops at the bound.
    logits = torch.eye(4, dtype=torch.float64).repeat(10, 1) * 10
    labels = torch.arange(4).repeat(10)
    t = fit_temperature(logits, labels)
    assert t < 1.0 and nll(logits, labels, t) <= nll(logits, labels)
