"""Exact policy gradients of SPO, ARPO and BARPO under the direct parameterisation, and projected
gradient ascent on the simplex.

Direct parameterisation: the parameters are the policy's entries pi[s, a] themselves (Agarwal et
al. 2021, Sec. 4). For a fixed adversary nu the objective J(pi) = V^{pi o nu}(mu0) has the exact
gradient (policy gradient theorem, with d the unnormalised discounted visitation of pi o nu)

    dJ / dpi[t, a] = sum_{s : nu(s) = t} d^{pi o nu}(s) Q^{pi o nu}(s, a),

which holds for the raw entries (V is a rational function of them), so it can be checked against
finite differences without staying on the simplex. The three objectives differ only in nu
(BARPO paper, Sections 2 and 4):

- ``spo``: nu = identity, J = V^pi(mu0)                                          (SPO)
- ``arpo``: nu = nu*(pi), the strongest adversary, held at its argmin            (ARPO)
- ``barpo``: nu(s) = argmax_{s_hat in B(s)} KL(pi(.|s) || pi(.|s_hat)), held fixed
  (the BARPO equation; the practical algorithm also drops second-order terms)     (BARPO)

With a finite B(s) both adversaries are piecewise constant in pi, so holding them fixed gives the
gradient of the true objective wherever their argmin / argmax is unique.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.theory.mdp import TabularISAMDP

__all__ = [
    "OBJECTIVES",
    "adversary_for",
    "check_objective",
    "objective_value",
    "policy_gradient",
    "project_to_simplex",
    "projected_gradient_ascent",
]

OBJECTIVES = ("spo", "arpo", "barpo")


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise InvalidArgumentError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return objective


def adversary_for(mdp: TabularISAMDP, pi: Any, objective: str) -> np.ndarray:
    """The adversary nu the objective evaluates pi under: identity (SPO; the true state, or the
    first of B(s) when s is not admissible), nu*(pi) (ARPO) or the max-KL adversary (BARPO)."""
    check_objective(objective)
    if objective == "spo":
        return mdp._identity.copy()
    if objective == "arpo":
        return mdp.strongest_adversary(pi)
    return mdp.kl_adversary(pi)


def objective_value(mdp: TabularISAMDP, pi: Any, objective: str) -> float:
    """J(pi) = V^{pi o nu}(mu0) with nu = :func:`adversary_for` (pi, objective)."""
    pi = mdp.check_policy(pi)
    return mdp.expected(mdp._evaluate(pi[adversary_for(mdp, pi, objective)]))


def policy_gradient(mdp: TabularISAMDP, pi: Any, objective: str, adversary: Any = None) -> np.ndarray:
    """dJ/dpi[s, a] of ``objective`` at pi, shape (S, A), with its adversary held fixed (or the
    given ``adversary``)."""
    pi = mdp.check_policy(pi)
    nu = adversary_for(mdp, pi, objective) if adversary is None else mdp.check_adversary(adversary)
    effective = pi[nu]
    weighted = mdp.occupancy(effective)[:, None] * mdp._q(effective)  # [s, a] for the true state s
    gradient = np.zeros_like(pi)
    np.add.at(gradient, nu, weighted)  # the entry pi[nu(s), a] acts in the true state s
    return gradient


def project_to_simplex(x: Any) -> np.ndarray:
    """Euclidean projection of each row of ``x`` onto the probability simplex (Duchi et al. 2008,
    Fig. 1)."""
    x = np.asarray(x, dtype=np.float64)
    u = -np.sort(-x, axis=-1)
    cumulative = np.cumsum(u, axis=-1) - 1.0
    index = np.arange(1, x.shape[-1] + 1)
    rho = np.sum(u - cumulative / index > 0, axis=-1, keepdims=True)
    theta = np.take_along_axis(cumulative, rho - 1, -1) / rho
    return np.maximum(x - theta, 0.0)


def projected_gradient_ascent(
    mdp: TabularISAMDP, pi: Any, objective: str, lr: float, steps: int, *, keep_path: bool = False
) -> tuple[np.ndarray, list[np.ndarray]]:
    """pi_{k+1} = Proj_simplex(pi_k + lr * grad J(pi_k)) for ``steps`` steps (Agarwal et al. 2021,
    projected gradient ascent under direct parameterisation). Returns the final policy and, with
    ``keep_path``, every iterate (pi_0 first)."""
    check_objective(objective)
    if not lr > 0 or not np.isfinite(lr):
        raise InvalidArgumentError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise InvalidArgumentError(f"steps must be an integer >= 0, got {steps!r}")
    pi = mdp.check_policy(pi)
    path = [pi.copy()] if keep_path else []
    for _ in range(int(steps)):
        pi = project_to_simplex(pi + lr * policy_gradient(mdp, pi, objective))
        if keep_path:
            path.append(pi.copy())
    return pi, path
