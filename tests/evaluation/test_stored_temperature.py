"""A temperature stored with a model: applied to served probabilities, and given to a report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tl_bench.evaluation import build_report, nll, rescale_probabilities


def test_rescaled_probabilities_are_the_softmax_of_the_scaled_logits() -> None:
    logits = torch.randn(50, 7, generator=torch.Generator().manual_seed(0)) * 4
    for temperature in (0.5, 1.0, 2.5):
        served = torch.softmax(logits, dim=1).numpy()
        expected = torch.softmax(logits.double() / temperature, dim=1).numpy()
        assert np.allclose(rescale_probabilities(served, temperature), expected, atol=1e-6)
    assert (rescale_probabilities(served, 3.0).argmax(1) == served.argmax(1)).all()
    with pytest.raises(ValueError, match="positive"):
        rescale_probabilities(served, 0.0)


def test_a_report_given_a_temperature_uses_it_and_says_so() -> None:
    gen = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(40, 5, generator=gen), torch.randint(0, 5, (40,), generator=gen)
    report = build_report(logits, labels, temperature=2.0)
    assert report.temperature == 2.0 and report.summary["temperature_fit_on"] == "stored with the model"
    assert report.summary["nll_scaled"] == pytest.approx(nll(logits, labels, 2.0))
    with pytest.raises(ValueError, match="not both"):
        build_report(logits, labels, temperature=2.0, val_logits=logits, val_labels=labels)
