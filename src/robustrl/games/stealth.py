"""How visible an attack is in the states the victim visits (Rethinking adversarial policies,
Section 7 Q1, Figures 1, 3 and 7, Appendix E.2), usable on any two sets of visited states
(arrays [n, d]), with the bounds of Propositions 3.1 and 3.2 for comparison.

A warning measured while writing this (issue 14): in 27 dimensions with 2000 points the exact W2 of
two samples of the *same* distribution was 4.8 against 5.0 for a real shift, because empirical W2
converges at rate n^(-1/d). So every sample distance here comes with a split-half baseline (the
same distance between two halves of the reference sample), and the smooth alternatives are given
beside it: the Bures-Wasserstein distance of fitted Gaussians and a sliced W2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError


def _states(x: Any, name: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 2:
        raise InvalidArgumentError(f"{name} must be an array of visited states [n >= 2, dims], got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidArgumentError(f"{name} holds NaN or infinite values")
    return array


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _states(x, "x"), _states(y, "y")
    if x.shape[1] != y.shape[1]:
        raise InvalidArgumentError(f"x and y must have the same state dimension, got {x.shape[1]} and {y.shape[1]}")
    return x, y


def wasserstein2(x: Any, y: Any) -> float:
    """The exact W2 between two empirical distributions (uniform weights), by optimal transport on
    the squared Euclidean cost (POT's ``emd2``). The paper's Figure 3 plots its square."""
    import ot

    x, y = _pair(x, y)
    cost = ot.dist(x, y, metric="sqeuclidean")
    return float(np.sqrt(max(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=10_000_000), 0.0)))


def sliced_wasserstein2(x: Any, y: Any, projections: int = 256, seed: int = 0) -> float:
    """Sliced W2: the root mean of squared 1-d W2 over random directions (POT)."""
    import ot

    x, y = _pair(x, y)
    return float(ot.sliced_wasserstein_distance(x, y, n_projections=projections, p=2, seed=seed))


def split_half_baseline(x: Any, distance: Any = wasserstein2, seed: int = 0) -> float:
    """``distance`` between two random halves of the same sample ``x``: the value a distance takes
    with no shift at all, at (half) this sample size. Report it beside every distance."""
    x = _states(x, "x")
    if len(x) < 4:
        raise InvalidArgumentError("split_half_baseline needs at least 4 states")
    order = np.random.default_rng(seed).permutation(len(x))
    half = len(x) // 2
    return float(distance(x[order[:half]], x[order[half : 2 * half]]))


def fit_gaussian(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of the states."""
    x = _states(x, "x")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def gaussian_w2(mean1: Any, cov1: Any, mean2: Any, cov2: Any) -> float:
    """Bures-Wasserstein: W2 between N(m1, S1) and N(m2, S2),
    ``sqrt(|m1 - m2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2))``."""
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    s1, s2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    root2 = _sqrtm(s2)
    cross = _sqrtm(root2 @ s1 @ root2)
    return float(np.sqrt(max(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * cross), 0.0)))


def gaussian_kl(mean1: Any, cov1: Any, mean2: Any, cov2: Any) -> float:
    """KL(N(m1, S1) || N(m2, S2)) = 1/2 [tr(S2^-1 S1) + (m2 - m1)^T S2^-1 (m2 - m1) - d + ln det S2 / det S1]."""
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    s1, s2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    diff = m2 - m1
    _, logdet1 = np.linalg.slogdet(s1)
    _, logdet2 = np.linalg.slogdet(s2)
    inverse = np.linalg.inv(s2)
    return float(0.5 * (np.trace(inverse @ s1) + diff @ inverse @ diff - len(m1) + logdet2 - logdet1))


def gaussian_hellinger(mean1: Any, cov1: Any, mean2: Any, cov2: Any) -> float:
    """Hellinger distance H (H^2 = 1 - Bhattacharyya coefficient) between two Gaussians:
    ``H^2 = 1 - det(S1)^1/4 det(S2)^1/4 / det(S)^1/2 exp(-1/8 dm^T S^-1 dm)``, S = (S1 + S2) / 2."""
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    s1, s2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    s = (s1 + s2) / 2
    diff = m1 - m2
    _, l1 = np.linalg.slogdet(s1)
    _, l2 = np.linalg.slogdet(s2)
    _, ls = np.linalg.slogdet(s)
    coefficient = np.exp(0.25 * l1 + 0.25 * l2 - 0.5 * ls - diff @ np.linalg.solve(s, diff) / 8)
    return float(np.sqrt(max(1.0 - coefficient, 0.0)))


def feature_importance(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Variance-based feature importance (Section 7, Appendix E.2): the features sorted by their
    variance in the visited states, largest first; returns (indices, variances)."""
    x = _states(x, "x")
    variance = x.var(axis=0)
    order = np.argsort(-variance, kind="stable")
    return order, variance[order]


def important_features(x: Any, keep: int) -> np.ndarray:
    """The ``keep`` highest-variance feature indices (to compare shifts on them only, Figure 1)."""
    if not isinstance(keep, int) or keep < 1:
        raise InvalidArgumentError(f"keep must be a positive integer, got {keep!r}")
    return feature_importance(x)[0][:keep]


def stealth_report(reference: Any, attacked: Any, *, exact_w2: bool = True, seed: int = 0) -> dict[str, float]:
    """Every measure between the unattacked states ``reference`` and the ``attacked`` ones, with the
    split-half baselines of the sample distances."""
    x, y = _pair(reference, attacked)
    m1, s1 = fit_gaussian(x)
    m2, s2 = fit_gaussian(y)
    ridge = 1e-9 * np.eye(len(m1))
    report = {
        "gaussian_w2": gaussian_w2(m1, s1, m2, s2),
        "gaussian_kl": gaussian_kl(m2, s2 + ridge, m1, s1 + ridge),  # KL(attacked || reference)
        "gaussian_hellinger": gaussian_hellinger(m1, s1 + ridge, m2, s2 + ridge),
        "sliced_w2": sliced_wasserstein2(x, y, seed=seed),
        "sliced_w2_split_half": split_half_baseline(x, lambda a, b: sliced_wasserstein2(a, b, seed=seed), seed),
    }
    if exact_w2:
        report["w2"] = wasserstein2(x, y)
        report["w2_split_half"] = split_half_baseline(x, wasserstein2, seed)
    return report


def value_bound(eps_pi: float, gamma: float, reward_bound: float = 1.0) -> float:
    """Proposition 3.1: |V(nu, benign) - V(nu, pi_alpha)| <= 2 eps_pi R / (1 - gamma)^2 whenever
    D_TV^max(pi_alpha || benign) <= eps_pi and |r| <= R (the paper takes R = 1)."""
    return 2.0 * eps_pi * reward_bound / (1.0 - gamma) ** 2


def occupancy_bound(eps_pi: float, gamma: float) -> float:
    """Proposition 3.2: ||d(nu, benign) - d(nu, pi_alpha)||_1 <= 2 gamma eps_pi / (1 - gamma)."""
    return 2.0 * gamma * eps_pi / (1.0 - gamma)
