"""LogME and k-NN accuracy against their definitions on small hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from tl_bench.screen.scores import class_evidence, knn_accuracy, logme


def _evidence_at(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    # The marginal of y = F w + e, w ~ N(0, I/alpha), e ~ N(0, I/beta): N(0, F F^T / alpha + I / beta).
    n = len(target)
    cov = features @ features.T / alpha + np.eye(n) / beta
    return float(multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(target)) / n


def test_evidence_is_the_marginal_likelihood_at_its_maximum() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    target = features @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + 0.3 * rng.normal(size=40)
    found = class_evidence(features, target)
    assert found.value == pytest.approx(_evidence_at(features, target, found.alpha, found.beta), rel=1e-9)
    for da, db in ((1.5, 1.0), (1 / 1.5, 1.0), (1.0, 1.5), (1.0, 1 / 1.5)):
        assert _evidence_at(features, target, found.alpha * da, found.beta * db) < found.value


def test_noise_precision_follows_the_noise() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(200, 3))
    clean = features @ np.array([1.0, 1.0, 1.0])
    quiet = class_evidence(features, clean + 0.1 * rng.normal(size=200))
    loud = class_evidence(features, clean + 1.0 * rng.normal(size=200))
    assert quiet.beta == pytest.approx(100, rel=0.3) and loud.beta == pytest.approx(1, rel=0.3)


def test_logme_prefers_features_that_separate_the_classes() -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 30)
    informative = np.eye(3)[labels] * 3 + 0.5 * rng.normal(size=(90, 3))
    noise = rng.normal(size=(90, 3))
    assert logme(informative, labels) > logme(noise, labels)


def test_knn_votes_with_cosine_neighbours() -> None:
    # Two directions; the validation points sit near the first (class 0) and the second (class 1),
    # but far out along the ray: cosine, not Euclidean, distance decides.
    train = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    labels = np.array([0, 0, 1, 1])
    val = np.array([[50.0, 1.0], [2.0, 60.0]])
    assert knn_accuracy(train, labels, val, np.array([0, 1]), k=1) == 1.0
    assert knn_accuracy(train, labels, val, np.array([1, 0]), k=1) == 0.0
