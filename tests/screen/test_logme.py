"""LogME's evidence maximisation against a direct d x d implementation: the iteration reaches the
fixed point of MacKay's updates, and fewer samples than dimensions give the same answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from tl_bench.screen.scores import Evidence, class_evidence, logme


def _posterior(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, float]:
    # The textbook form: A = alpha I_d + beta F^T F, m = beta A^-1 F^T y, gamma = d - alpha tr(A^-1).
    d = features.shape[1]
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ target)
    return m, float(d - alpha * np.trace(np.linalg.inv(a)))


def _updates(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> tuple[float, float]:
    m, gamma = _posterior(features, target, alpha, beta)
    return gamma / float(m @ m), (len(target) - gamma) / float(((target - features @ m) ** 2).sum())


def _fixed_point_gap(features: np.ndarray, target: np.ndarray, found: Evidence) -> float:
    """How far one more update would move alpha or beta, relatively: 0 at the fixed point."""
    alpha, beta = _updates(features, target, found.alpha, found.beta)
    return max(abs(alpha / found.alpha - 1), abs(beta / found.beta - 1))


def _direct_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    n, d = features.shape
    m, _ = _posterior(features, target, alpha, beta)
    logdet = np.linalg.slogdet(alpha * np.eye(d) + beta * features.T @ features)[1]
    return float(d / 2 * np.log(alpha) + n / 2 * np.log(beta) - beta / 2 * ((target - features @ m) ** 2).sum()
                 - alpha / 2 * (m @ m) - logdet / 2 - n / 2 * np.log(2 * np.pi)) / n


def _marginal(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    # y ~ N(0, F F^T / alpha + I / beta): the evidence with no formula of LogME's in between.
    n = len(target)
    cov = features @ features.T / alpha + np.eye(n) / beta
    return float(multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(target)) / n


def _slow_case() -> tuple[np.ndarray, np.ndarray]:
    # A flat evidence in alpha: after 11 updates alpha is still ~40% short of its fixed point.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 40))
    return features, (features[:, :2].sum(1) + rng.normal(size=60) > 0).astype(np.float64)


def test_the_iteration_reaches_the_fixed_point_that_eleven_updates_miss() -> None:
    features, target = _slow_case()
    found = class_evidence(features, target)
    assert found.converged and 11 < found.iterations <= 1000
    assert _fixed_point_gap(features, target, found) < 1e-4
    early = class_evidence(features, target, max_iter=11)
    assert not early.converged and _fixed_point_gap(features, target, early) > 1e-2
    assert early.alpha < 0.8 * found.alpha
    # The value is the marginal likelihood at (alpha, beta), and no (alpha, beta) does better.
    assert found.value == pytest.approx(_marginal(features, target, found.alpha, found.beta), rel=1e-9)
    best = minimize(lambda p: -_marginal(features, target, *np.exp(p)), np.log([early.alpha, early.beta]),
                    method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 2000})
    assert found.value >= -best.fun - 1e-9
    assert found.value > early.value + 1e-4


def _reference(features: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """The d x d formulation: all d eigen-directions of F^T F, the null ones included, iterated to
    a far tighter tolerance than the score uses."""
    n, d = features.shape
    sigma, v = np.linalg.eigh(features.T @ features)
    sigma = np.clip(sigma, 0.0, None)
    projected = v.T @ (features.T @ target)
    alpha, beta = 1.0, 1.0
    for _ in range(100000):
        m = v @ (beta * projected / (alpha + beta * sigma))
        gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
        new_alpha, new_beta = gamma / float(m @ m), (n - gamma) / float(((target - features @ m) ** 2).sum())
        settled = abs(new_alpha / alpha - 1) < 1e-11 and abs(new_beta / beta - 1) < 1e-11
        alpha, beta = new_alpha, new_beta
        if settled:
            return _direct_evidence(features, target, alpha, beta), alpha, beta
    raise AssertionError("the reference did not settle")


def test_fewer_samples_than_dimensions_match_the_direct_formulation() -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(40, 120))
    target = (features[:, :3].sum(1) + 0.5 * rng.normal(size=40) > 0).astype(np.float64)
    found = class_evidence(features, target)
    value, alpha, beta = _reference(features, target)
    assert found.converged and np.isfinite([found.value, found.alpha, found.beta]).all()
    assert found.value == pytest.approx(value, rel=1e-7)
    assert (found.alpha, found.beta) == pytest.approx((alpha, beta), rel=1e-3)
    assert found.value == pytest.approx(_marginal(features, target, found.alpha, found.beta), rel=1e-9)
    assert _fixed_point_gap(features, target, found) < 1e-4
    assert logme(features, target.astype(int)) == pytest.approx(np.mean([
        _reference(features, (target == c).astype(np.float64))[0] for c in (0, 1)]), rel=1e-7)


def test_repeated_dimensions_are_the_same_features_at_another_scale() -> None:
    # [G, G] spans what sqrt(2) G spans, with rank 20 of 80 columns: the null directions must
    # neither count in the evidence nor stall the iteration.
    rng = np.random.default_rng(5)
    g = rng.normal(size=(20, 40))
    labels = np.repeat(np.arange(2), 10)
    g[:, 0] += 2.0 * labels
    assert logme(np.hstack([g, g]), labels) == pytest.approx(logme(np.sqrt(2) * g, labels), rel=1e-7)
    assert logme(100.0 * g, labels) == pytest.approx(logme(g, labels), rel=1e-7)
    # Dead channels (all-zero columns, as ReLU features have) change nothing, with more samples too.
    tall = rng.normal(size=(60, 8)) + np.repeat(np.arange(2), 30)[:, None]
    tall_labels = np.repeat(np.arange(2), 30)
    assert logme(np.hstack([tall, np.zeros((60, 4))]), tall_labels) == pytest.approx(logme(tall, tall_labels), rel=1e-9)


def test_a_perfect_fit_with_fewer_samples_than_dimensions_stays_finite() -> None:
    # y = F w exactly, n < d: the evidence grows as the noise precision goes to infinity, towards a
    # finite limit; the score must approach that limit, not overflow on the way.
    rng = np.random.default_rng(6)
    features = rng.normal(size=(25, 100))
    target = features @ rng.normal(size=100)
    found = class_evidence(features, target)
    assert np.isfinite([found.value, found.alpha, found.beta]).all()
    assert found.value == pytest.approx(_marginal(features, target, found.alpha, found.beta), rel=1e-6)
    grid = [_marginal(features, target, a, b) for a in np.geomspace(1e-2, 1e2, 9) for b in np.geomspace(1e-2, 1e6, 9)]
    assert found.value >= max(grid) - 1e-9
