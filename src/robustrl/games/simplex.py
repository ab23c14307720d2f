"""Probability simplices: Euclidean projection (row by row, with optional legal-action masks) and
the partial-control mixture ``(1 - eps_pi) * benign + eps_pi * adversarial`` (Rethinking
adversarial policies, Eq. 3.2)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError


def project_simplex(v: Any, mask: Any = None) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the probability simplex (Duchi et al. 2008,
    the sort-based algorithm). Entries where ``mask`` is False are forced to 0 (illegal actions).
    The operator P_Pi of Algorithms 1 and 2 under direct parameterisation."""
    v = np.asarray(v, dtype=np.float64)
    one_row = v.ndim == 1
    rows = np.atleast_2d(v).copy()
    if mask is not None:
        mask = np.broadcast_to(np.atleast_2d(np.asarray(mask, dtype=bool)), rows.shape)
        # far below any legal entry, so the threshold never admits them
        rows = np.where(mask, rows, np.min(rows, initial=0.0) - 1e6 - np.abs(rows).max(initial=0.0))
    n = rows.shape[1]
    u = -np.sort(-rows, axis=1)
    cumulative = np.cumsum(u, axis=1) - 1.0
    k = np.arange(1, n + 1)
    support = u - cumulative / k > 0
    rho = n - 1 - np.argmax(support[:, ::-1], axis=1)  # last index where the condition holds
    theta = cumulative[np.arange(rows.shape[0]), rho] / (rho + 1)
    out = np.maximum(rows - theta[:, None], 0.0)
    if mask is not None:
        out = np.where(mask, out, 0.0)
    return out[0] if one_row else out


def check_eps_pi(eps_pi: Any) -> float:
    """eps_pi, the attacker's share of control, must be a number in [0, 1]."""
    if isinstance(eps_pi, bool) or not isinstance(eps_pi, (int, float)) or not math.isfinite(eps_pi):
        raise InvalidArgumentError(f"eps_pi (the attacker's share of control) must be in [0, 1], got {eps_pi!r}")
    if not 0.0 <= eps_pi <= 1.0:
        raise InvalidArgumentError(f"eps_pi (the attacker's share of control) must be in [0, 1], got {eps_pi!r}")
    return float(eps_pi)


def mixture(benign: Any, adversarial: Any, eps_pi: float) -> np.ndarray:
    """The deployed opponent's policy ``(1 - eps_pi) * benign + eps_pi * adversarial`` (Eq. 3.2);
    its total-variation distance to ``benign`` is at most eps_pi in every state."""
    eps_pi = check_eps_pi(eps_pi)
    return (1.0 - eps_pi) * np.asarray(benign, dtype=np.float64) + eps_pi * np.asarray(adversarial, dtype=np.float64)


def check_policy(policy: Any, shape: tuple[int, ...], name: str, mask: Any = None) -> np.ndarray:
    """A tabular policy of ``shape`` whose rows are distributions (legal entries only)."""
    array = np.asarray(policy, dtype=np.float64)
    if array.shape != tuple(shape):
        raise InvalidArgumentError(f"{name} must have shape {tuple(shape)} (states x actions), got {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < -1e-9):
        raise InvalidArgumentError(f"{name} must hold finite non-negative probabilities")
    if mask is not None and np.any(np.abs(np.where(np.asarray(mask, bool), 0.0, array)) > 1e-9):
        raise InvalidArgumentError(f"{name} puts probability on illegal actions")
    if not np.allclose(array.sum(axis=-1), 1.0, atol=1e-6):
        raise InvalidArgumentError(f"every row of {name} must sum to 1")
    return array


def random_policy(rng: np.random.Generator, shape: tuple[int, int], mask: Any = None) -> np.ndarray:
    """Rows drawn uniformly from the simplex (Dirichlet(1)) over the legal actions."""
    policy = rng.dirichlet(np.ones(shape[1]), size=shape[0])
    if mask is not None:
        policy = np.where(mask, policy, 0.0)
        policy /= policy.sum(axis=1, keepdims=True)
    return policy
