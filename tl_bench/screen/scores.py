"""Transferability scores of frozen features: how well a backbone's features suit a labelled task,
without training anything but closed-form models.

- ``logme``: LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning", ICML 2021). For each class, the log marginal evidence of a Bayesian linear model
  ``y_k = F w + noise`` (prior ``w ~ N(0, 1/alpha)``, noise ``N(0, 1/beta)``) with ``alpha`` and
  ``beta`` set by MacKay's fixed-point iteration, per sample, averaged over classes. Higher is
  better; values compare candidates on the same data only.
- ``knn_accuracy``: the validation accuracy of a k-nearest-neighbour classifier (cosine distance,
  majority vote; scikit-learn's) fitted on the training features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORES = ("logme", "knn")
MAX_ITER = 11  # the reference implementation's bound; the iteration settles in a few steps
TOL = 1e-2  # relative change of alpha / beta at which it stops


@dataclass(frozen=True)
class Evidence:
    """One class's evidence per sample, and the prior and noise precisions that maximise it."""

    value: float
    alpha: float
    beta: float


def class_evidence(features: np.ndarray, target: np.ndarray) -> Evidence:
    """Maximised log evidence per sample of ``target`` (n,) given ``features`` (n, d)."""
    f = features.astype(np.float64)
    y = target.astype(np.float64)
    n, d = f.shape
    # Eigen-decomposition of F^T F once; every step is then a diagonal solve.
    sigma, v = np.linalg.eigh(f.T @ f)
    sigma = np.clip(sigma, 0.0, None)
    projected = v.T @ (f.T @ y)
    alpha, beta = 1.0, 1.0
    for _ in range(MAX_ITER):
        gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
        m = v @ (beta * projected / (alpha + beta * sigma))  # posterior mean of w
        m2 = float(m @ m)
        residual = float(((y - f @ m) ** 2).sum())
        new_alpha = gamma / max(m2, 1e-12)
        new_beta = (n - gamma) / max(residual, 1e-12)
        settled = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < TOL
        alpha, beta = new_alpha, new_beta
        if settled:
            break
    m = v @ (beta * projected / (alpha + beta * sigma))
    m2, residual = float(m @ m), float(((y - f @ m) ** 2).sum())
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.log(alpha + beta * sigma).sum()
                - beta / 2 * residual - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))
    return Evidence(float(evidence / n), float(alpha), float(beta))


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` (n, d) for integer ``labels`` (n,): the mean over classes of each
    one-against-the-rest target's maximised evidence per sample."""
    classes = np.unique(labels)
    return float(np.mean([class_evidence(features, (labels == c).astype(np.float64)).value for c in classes]))


def knn_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray, val_labels: np.ndarray,
    *, k: int = 10,
) -> float:
    """Validation accuracy of a cosine k-nearest-neighbour vote on the training features."""
    from sklearn.neighbors import KNeighborsClassifier  # slow import: only when screening

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_labels)), metric="cosine")
    knn.fit(train_features, train_labels)
    return float((knn.predict(val_features) == val_labels).mean())


__all__ = ["Evidence", "SCORES", "class_evidence", "knn_accuracy", "logme"]
