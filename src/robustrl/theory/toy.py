"""The two-state, two-action ISA-MDP of the BARPO paper's Appendix D (Proposition D.1, which
proves Propositions 3.1 and 3.2), and the numbers the paper states about it.

r_hat = [-0.45, -0.1, 0.5, 0.5], P_hat = [[0.7, 0.3], [0.99, 0.01], [0.2, 0.8], [0.99, 0.01]]
(row (i - 1) |A| + j - 1 is state s_i, action a_j), gamma = 0.9, B(s1) = B(s2) = {s1, s2},
mu0 uniform. Policies pi_{alpha, beta}(a1 | s1) = alpha, pi_{alpha, beta}(a1 | s2) = beta.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustrl.theory.landscape import PolicySlice
from robustrl.theory.mdp import TabularISAMDP

__all__ = ["PAPER", "TOY_NAMES", "toy_isa_mdp", "toy_policy", "toy_slice", "toy_summary", "toy_threshold"]

# What Appendix D states (rounded as printed): equation (32), the threshold of (33), and the
# numbers of the proof of property (2) (Proposition 3.1).
PAPER: dict[str, Any] = {
    "values": {"pi_11": (0.16, 1.89), "pi_01": (-0.81, 1.26), "pi_00": (-0.95, -0.35), "pi_10": (-2.47, -1.71)},
    "threshold": 0.777,
    "value_spo_fosp": 1.03,  # V^{pi_S}(mu0), pi_S = pi_{1,1}
    "value_arpo_fosp": -0.65,  # V^{pi_A}(mu0), pi_A = pi_{0,0}
    "worst_value": -2.09,  # V^-(mu0) = min_pi V^pi(mu0), at pi_{1,0}
}
TOY_NAMES = {(1.0, 1.0): "optimal", (0.0, 0.0): "deceptive"}


def toy_isa_mdp() -> TabularISAMDP:
    """The ISA-MDP of Appendix D (state index 0 = s1, action index 0 = a1)."""
    r_hat = [-0.45, -0.1, 0.5, 0.5]
    p_hat = [[0.7, 0.3], [0.99, 0.01], [0.2, 0.8], [0.99, 0.01]]
    return TabularISAMDP(
        rewards=np.reshape(r_hat, (2, 2)),
        transitions=np.reshape(p_hat, (2, 2, 2)),
        gamma=0.9,
        perturbation_sets=[[0, 1], [0, 1]],
        initial_distribution=[0.5, 0.5],
    )


def toy_policy(alpha: float, beta: float) -> np.ndarray:
    """pi_{alpha, beta} as an array pi[s, a]."""
    return np.array([[alpha, 1.0 - alpha], [beta, 1.0 - beta]], dtype=np.float64)


def toy_slice() -> PolicySlice:
    """The whole policy space Theta = [0, 1]^2 of the toy as a :class:`PolicySlice`."""
    return PolicySlice.build(toy_isa_mdp())


def toy_threshold(state: int, mdp: TabularISAMDP | None = None, iterations: int = 200) -> float:
    """beta~ of equation (33): the root in [0, 1] of f(beta, s) = V^{pi_{1,beta}}(s) -
    V^{pi_{0,beta}}(s), by bisection (f < 0 below it, > 0 above it)."""
    mdp = mdp or toy_isa_mdp()

    def f(beta: float) -> float:
        return float(mdp.value(toy_policy(1.0, beta))[state] - mdp.value(toy_policy(0.0, beta))[state])

    low, high = 0.0, 1.0
    if not (f(low) < 0.0 < f(high)):  # pragma: no cover - a property of the toy, tested
        raise RuntimeError("f(beta, s) does not change sign on [0, 1]")
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        if f(middle) > 0.0:
            high = middle
        else:
            low = middle
        if high - low < 1e-15:
            break
    return 0.5 * (low + high)


def in_paper_robust_region(alpha: Any, beta: Any, threshold: float) -> np.ndarray:
    """Appendix D's robust region {alpha = beta} U {beta <= min(alpha, beta~)}."""
    alpha, beta = np.asarray(alpha), np.asarray(beta)
    return (alpha == beta) | (beta <= np.minimum(alpha, threshold))


def toy_summary() -> dict[str, Any]:
    """Everything ``robustrl theory toy`` prints: the four deterministic policies' values and
    adversarial values (equation 32), beta~ per state (33), the optimal and optimal robust
    policies, and Proposition 3.1's numbers with its inequality checked."""
    mdp = toy_isa_mdp()
    policies = {}
    for alpha in (1, 0):
        for beta in (1, 0):
            pi = toy_policy(alpha, beta)
            natural, adversarial = mdp.value(pi), mdp.adversarial_value(pi)
            policies[f"pi_{alpha}{beta}"] = {
                "alpha": alpha,
                "beta": beta,
                "value": natural.tolist(),
                "adversarial_value": adversarial.tolist(),
                "value_mu0": mdp.expected(natural),
                "adversarial_value_mu0": mdp.expected(adversarial),
                "strongest_adversary": mdp.strongest_adversary(pi).tolist(),
                "robust": mdp.is_robust(pi),
            }
    thresholds = [toy_threshold(0, mdp), toy_threshold(1, mdp)]
    plane = PolicySlice.build(mdp)
    worst = min(p["value_mu0"] for p in policies.values())  # a deterministic policy attains min_pi V^pi(mu0)
    spo_fosp = policies["pi_11"]["value_mu0"]
    arpo_fosp = policies["pi_00"]["value_mu0"]
    corners = np.array([[0.0, 0.0], [1.0, 1.0]])
    stationary = {
        objective: (plane.steepest_slope(corners, objective) <= 1e-6).tolist() for objective in ("spo", "arpo", "barpo")
    }
    return {
        "mdp": mdp.to_dict(),
        "policies": policies,
        "threshold": {"s1": thresholds[0], "s2": thresholds[1], "paper": PAPER["threshold"]},
        "optimal_policy": mdp.optimal_policy().tolist(),
        "optimal_robust_policy": None if (orp := mdp.optimal_robust_policy()) is None else orp.tolist(),
        "robust_region": "alpha = beta, or beta <= min(alpha, beta~)",
        "proposition_3_1": {
            "worst_value": worst,
            "spo_fosp": {"policy": "pi_11", "value": spo_fosp},
            "arpo_fosp": {"policy": "pi_00", "value": arpo_fosp, "robust": policies["pi_00"]["robust"]},
            "gap_arpo": arpo_fosp - worst,
            "half_gap_spo": 0.5 * (spo_fosp - worst),
            "holds": bool(policies["pi_00"]["robust"] and arpo_fosp - worst < 0.5 * (spo_fosp - worst)),
            "stationary_at": {
                "(0, 0)": {k: v[0] for k, v in stationary.items()},
                "(1, 1)": {k: v[1] for k, v in stationary.items()},
            },
        },
        "paper": PAPER,
    }
