"""Transferability scores of frozen features: how well a backbone's features suit a labelled task,
without training anything but closed-form models.

- ``logme``: LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning", ICML 2021) on the training split. For each class, the log marginal evidence of a
  Bayesian linear model ``y_k = F w + noise`` (prior ``w ~ N(0, 1/alpha)``, noise ``N(0, 1/beta)``)
  with ``alpha`` and ``beta`` at the fixed point of MacKay's updates, per sample, averaged over
  classes. Higher is better; values compare candidates on the same data only.
- ``knn_accuracy``: a k-nearest-neighbour classifier (cosine distance, majority vote;
  scikit-learn's) fitted on the training split's features and labels, scored by its accuracy on
  the validation split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORES = ("logme", "knn")
# The reference implementation stops after 11 updates: where the evidence is flat in alpha, that
# leaves alpha far short of its fixed point, and the score then depends on the starting point and
# on the features' scale. An update costs O(rank) once the spectrum is known, so iterating to a
# tight tolerance is cheap; the cap only ends drifts towards an infinite alpha or beta.
MAX_ITER = 1000
TOL = 1e-5  # relative change of both alpha and beta at which the iteration has settled


@dataclass(frozen=True)
class Evidence:
    """One class's evidence per sample, and the prior and noise precisions that maximise it."""

    value: float
    alpha: float
    beta: float
    iterations: int  # fixed-point updates made
    converged: bool  # False: stopped at ``max_iter`` (alpha or beta still drifting, e.g. towards infinity)


@dataclass(frozen=True)
class Spectrum:
    """The features' squared singular values ``sigma`` (k,) and left singular vectors ``u`` (n, k),
    truncated to their numerical rank k <= min(n, d); every evidence computation needs only these."""

    sigma: np.ndarray
    u: np.ndarray
    n: int


def spectrum(features: np.ndarray) -> Spectrum:
    """The thin SVD of ``features`` (n, d), truncated to rank min(n, d) or lower, from the smaller of
    its two Gram matrices: d x d when n > d (as LogME's reference code does), n x n otherwise, so
    fewer samples than dimensions cost nothing extra and the null directions drop out."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    if n > d:
        sigma, v = np.linalg.eigh(f.T @ f)
    else:
        sigma, u = np.linalg.eigh(f @ f.T)
    # Eigenvalues below this are rounding noise of a zero singular value (numpy's matrix_rank rule).
    keep = sigma > float(sigma.max(initial=0.0)) * max(n, d) * np.finfo(np.float64).eps
    sigma = sigma[keep]
    u = f @ (v[:, keep] / np.sqrt(sigma)) if n > d else u[:, keep]
    return Spectrum(sigma=sigma, u=u, n=n)


def _moments(s: Spectrum, x2: np.ndarray, rest: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per target at ``t = alpha / beta`` (C,): the effective number of parameters ``gamma``,
    ``n - gamma``, the posterior mean's squared norm ``|m|^2`` and the squared residual
    ``|y - F m|^2`` (``x2`` (k, C): squared projections of the targets on ``u``; ``rest`` (C,): the
    part of ``|y|^2`` outside their span)."""
    sigma = s.sigma[:, None]
    shrink = sigma + t
    gamma = (sigma / shrink).sum(0)
    # Summed directly, not as n - gamma: when n <= d and the fit nears interpolation, gamma rounds
    # to n and the noise precision would collapse to zero.
    free = (s.n - len(s.sigma)) + (t / shrink).sum(0)
    m2 = (sigma * x2 / shrink**2).sum(0)
    residual = (x2 * (t / shrink) ** 2).sum(0) + rest
    return gamma, free, m2, residual


def evidences(s: Spectrum, targets: np.ndarray, *, tol: float = TOL, max_iter: int = MAX_ITER) -> list[Evidence]:
    """Maximised log evidence per sample of each column of ``targets`` (n, C) over the features
    behind ``s``: MacKay's updates ``alpha = gamma / |m|^2``, ``beta = (n - gamma) / |y - F m|^2``
    from ``alpha = beta = 1``, all columns at once, until both change by at most ``tol`` (relative)."""
    y = np.asarray(targets, dtype=np.float64).reshape(s.n, -1)
    k, n_targets = len(s.sigma), y.shape[1]
    x2 = (s.u.T @ y) ** 2
    y2 = (y * y).sum(0)
    rest = np.maximum(y2 - x2.sum(0), 0.0)  # outside the features' span; rounding can make it negative
    # Floors keep alpha and beta finite where the evidence peaks at infinity (no signal: alpha; a
    # perfect fit: beta); scaled with |y|^2 and the spectrum so scaling the features scales them too.
    floor_residual = 1e-12 * np.maximum(y2, np.finfo(np.float64).tiny)
    floor_m2 = floor_residual / s.sigma.max() if k else floor_residual
    alpha, beta = np.ones(n_targets), np.ones(n_targets)
    iterations, converged = np.zeros(n_targets, dtype=int), np.zeros(n_targets, dtype=bool)
    active = np.arange(n_targets)
    while active.size and iterations[active[0]] < max_iter:
        a, b = alpha[active], beta[active]
        gamma, free, m2, residual = _moments(s, x2[:, active], rest[active], a / b)
        # Without features (rank 0) alpha plays no part; 1 keeps the evidence formula finite.
        new_a = gamma / np.maximum(m2, floor_m2[active]) if k else np.ones_like(a)
        new_b = free / np.maximum(residual, floor_residual[active])
        done = (np.abs(new_a - a) <= tol * a) & (np.abs(new_b - b) <= tol * b)
        alpha[active], beta[active] = new_a, new_b
        iterations[active] += 1
        converged[active] = done
        active = active[~done]
    _, _, m2, residual = _moments(s, x2, rest, alpha / beta)
    # log|alpha I_d + beta F^T F| = sum(log(alpha + beta sigma)) + (d - k) log(alpha): the null
    # directions cancel the prior's d/2 log(alpha) down to k/2 log(alpha).
    value = (k / 2 * np.log(alpha) + s.n / 2 * np.log(beta) - 0.5 * np.log(alpha + beta * s.sigma[:, None]).sum(0)
             - beta / 2 * residual - alpha / 2 * m2 - s.n / 2 * np.log(2 * np.pi)) / s.n
    return [Evidence(float(v), float(a), float(b), int(i), bool(c))
            for v, a, b, i, c in zip(value, alpha, beta, iterations, converged)]


def class_evidence(features: np.ndarray, target: np.ndarray, *, tol: float = TOL, max_iter: int = MAX_ITER) -> Evidence:
    """Maximised log evidence per sample of ``target`` (n,) given ``features`` (n, d)."""
    return evidences(spectrum(features), target, tol=tol, max_iter=max_iter)[0]


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` (n, d) for integer ``labels`` (n,): the mean over classes of each
    one-against-the-rest target's maximised evidence per sample."""
    targets = (labels[:, None] == np.unique(labels)[None, :]).astype(np.float64)
    return float(np.mean([e.value for e in evidences(spectrum(features), targets)]))


def knn_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray, val_labels: np.ndarray,
    *, k: int = 10,
) -> float:
    """Accuracy on ``val_labels`` of a cosine k-nearest-neighbour vote whose neighbours are the
    training features: fitted on the training split, scored on the validation split."""
    from sklearn.neighbors import KNeighborsClassifier  # slow import: only when screening

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_labels)), metric="cosine")
    knn.fit(train_features, train_labels)
    return float((knn.predict(val_features) == val_labels).mean())


__all__ = ["Evidence", "SCORES", "Spectrum", "class_evidence", "evidences", "knn_accuracy", "logme", "spectrum"]
