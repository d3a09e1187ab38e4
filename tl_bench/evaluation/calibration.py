"""Temperature scaling (Guo et al. 2017): one scalar ``T`` dividing the logits, fitted on validation.

``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident one; the
predicted class never changes, so accuracy is untouched. The fitted ``T`` is stored with the
model and applied at prediction time as ``softmax(logits / T)``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from tl_bench.evaluation.metrics import check_split

# Where the search for T stays: wide enough for any model worth keeping, narrow enough that a
# split the model gets all right (NLL falling forever as T -> 0) ends at a finite value.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def nll(logits: torch.Tensor | npt.ArrayLike, labels: torch.Tensor | npt.ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)`` (float64)."""
    z, y = check_split(logits, labels)
    return _nll(z, y, temperature)


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    scaled = z / temperature
    return float(np.mean(logsumexp(scaled, axis=1) - scaled[np.arange(len(y)), y]))


def fit_temperature(logits: torch.Tensor | npt.ArrayLike, labels: torch.Tensor | npt.ArrayLike) -> float:
    """The temperature minimising validation NLL, within ``TEMPERATURE_BOUNDS``.

    NLL is convex in ``1 / T``, so a bounded scalar search over ``log T`` finds the minimum;
    the result never has a higher NLL than ``T = 1`` (checked, 1 is returned otherwise).
    """
    z, y = check_split(logits, labels)
    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    found = minimize_scalar(lambda log_t: _nll(z, y, math.exp(log_t)), bounds=(low, high), method="bounded",
                            options={"xatol": 1e-6})
    temperature = math.exp(float(found.x))
    return temperature if _nll(z, y, temperature) <= _nll(z, y, 1.0) else 1.0


def rescale_probabilities(probs: npt.ArrayLike, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` from the probabilities ``softmax(logits)`` a served model
    gives: ``log p`` differs from the logits by one constant per row, which softmax ignores, so
    the result is exact (a probability that underflowed to 0 stays 0). Rows (N, K), float64."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (N, K), got shape {p.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    with np.errstate(divide="ignore"):
        scaled = np.log(p) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    out = np.exp(scaled)
    return out / out.sum(axis=1, keepdims=True)


__all__ = ["TEMPERATURE_BOUNDS", "fit_temperature", "nll", "rescale_probabilities"]
