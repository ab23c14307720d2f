"""The certified robustness bound of "Pruning cannot hurt robustness" (Theorem 1) and a sharper
per-state certificate from interval bounds.

Theorem 1: for a Gaussian or softmax policy whose mean / logits g_theta is an MLP,

    max_s { V^pi(s) - V~^{pi o nu*}(s) }  <=  alpha * c * L~_theta * eps,

    L~_theta = prod_l Lip(sigma_l) * prod_l min(||W_l||_F, sqrt(||W_l||_1 ||W_l||_inf)),
    alpha    = 2 (1 + gamma / (1 - gamma)^2) R_max              (Zhang et al. 2020, Theorem 5),

with ||W||_1 the largest column sum of |W| and ||W||_inf the largest row sum. Each factor of L~
is monotone in the entries' magnitudes, so element-wise pruning never increases L~ (nor the bound).

Two corrections to the paper's constants, each shown by a test:

- Gaussian: the paper's Section 3.1 writes c = 1 / (sqrt(2 pi) lambda_min(Sigma)); its proof
  (Appendix B.1) uses 1 / sqrt(2 pi lambda_min(Sigma)). The proof's is the right one: for equal
  covariances TV = 2 Phi(Delta / 2) - 1 <= Delta / sqrt(2 pi), Delta the Mahalanobis distance of the
  means, Delta <= ||mu - mu'||_2 / sigma_min. We use c = 1 / (sqrt(2 pi) sigma_min), sigma_min the
  smallest std of the policy (its current, learned std: our policies learn a state-independent
  log-std; the paper fixes sigma = 0.1).
- Softmax: the paper's c = 1/4 is not a bound in the l_2 norm: two actions, logits (t, -t)/sqrt(2)
  against (0, 0) give TV = sigmoid(sqrt(2) t) - 1/2 ~ t / (2 sqrt(2)) > t / 4. The right constant is
  1 / (2 sqrt(2)): TV = 1/2 ||p - p'||_1, and along the path d TV <= 1/2 E_p|v - E_p v| <=
  1/2 sqrt(Var_p v) <= ||v||_2 / (2 sqrt(2)) (Popoviciu: Var <= (max - min)^2 / 4 <= ||v||^2 / 2).

The theorem's ball is l_2 (Appendix B.1); our attacks use l_inf balls of radius eps in d normalised
features, which sit inside the l_2 ball of radius eps * sqrt(d), so that radius is used for l_inf.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robustrl.policies.ibp import interval_bounds

# Lipschitz constants of the activations our MLPs use (tanh' <= 1; ReLU is 1-Lipschitz).
ACTIVATION_LIPSCHITZ = {nn.Tanh: 1.0, nn.ReLU: 1.0, nn.Identity: 1.0, nn.Sigmoid: 0.25, nn.LeakyReLU: 1.0, nn.ELU: 1.0}

SOFTMAX_C = 1.0 / (2.0 * math.sqrt(2.0))

# Max |reward| per step, where the reward formula bounds it, with the derivation. MuJoCo
# locomotion rewards include a forward velocity and are unbounded: for them R_max must be given
# (--r-max / prune.r_max) or is estimated from episodes (and then said to be empirical).
R_MAX: dict[str, tuple[float, str]] = {
    "Pendulum": (
        math.pi**2 + 0.1 * 8.0**2 + 0.001 * 2.0**2,
        "exact: pi^2 + 0.1 * 8^2 + 0.001 * 2^2 (max angle, speed, torque)",
    ),
    "CartPole": (1.0, "exact: +1 per step"),
    "InvertedPendulum": (1.0, "exact: +1 per step"),
    "InvertedDoublePendulum": (10.0, "exact: alive bonus 10 minus non-negative penalties"),
    "MountainCar": (1.0, "exact: -1 per step"),
    "Acrobot": (1.0, "exact: -1 or 0 per step"),
}


def matrix_norm_bound(weight: torch.Tensor) -> torch.Tensor:
    """min(||W||_F, sqrt(||W||_1 ||W||_inf)): an upper bound on the spectral norm ||W||_2 that is
    monotone in |W_ij| (Theorem 1). ``weight`` is (out, in), acting as x -> W x."""
    absolute = weight.detach().abs()
    frobenius = torch.linalg.matrix_norm(weight.detach(), "fro")
    one = absolute.sum(0).max()  # largest column sum
    infinity = absolute.sum(1).max()  # largest row sum
    return torch.minimum(frobenius, torch.sqrt(one * infinity))


def lipschitz_surrogate(network: nn.Sequential) -> float:
    """L~ of an MLP (Linear layers and activations): prod Lip(sigma) * prod min(||W||_F,
    sqrt(||W||_1 ||W||_inf)). An upper bound on its l_2 Lipschitz constant."""
    value = 1.0
    for layer in network:
        if isinstance(layer, nn.Linear):
            value *= float(matrix_norm_bound(layer.weight))
        elif type(layer) in ACTIVATION_LIPSCHITZ:
            value *= ACTIVATION_LIPSCHITZ[type(layer)]
        else:
            raise TypeError(f"L~: unsupported layer {type(layer).__name__} (Linear and known activations only)")
    return value


def tv_constant(policy: Any) -> float:
    """c of Theorem 1: TV(pi(s), pi(s')) <= c ||g(s) - g(s')||_2 (module docstring for both forms)."""
    if policy.continuous:
        sigma_min = float(policy.log_std.detach().exp().min())
        return 1.0 / (math.sqrt(2.0 * math.pi) * sigma_min)
    return SOFTMAX_C


def alpha(gamma: float, r_max: float) -> float:
    """alpha = 2 (1 + gamma / (1 - gamma)^2) R_max (Zhang et al. 2020, Theorem 5)."""
    return 2.0 * (1.0 + gamma / (1.0 - gamma) ** 2) * r_max


def l2_radius(eps: float, norm: str, obs_dim: int) -> float:
    """Radius of an l_2 ball containing the attack ball (l_inf: eps * sqrt(d))."""
    return eps * math.sqrt(obs_dim) if str(norm) == "inf" else eps


def r_max_for(env_id: str) -> tuple[float, str] | None:
    """(R_max, how it was obtained) for envs whose reward formula bounds it, else None."""
    from robustrl.config import env_family

    return R_MAX.get(env_family(env_id))


def certified_bound(policy: Any, eps: float, norm: str, gamma: float, r_max: float | None) -> dict[str, float]:
    """Theorem 1's pieces for ``policy`` at radius ``eps``: L~ (actor), c, the l_2 radius, the
    per-state TV bound c L~ eps_2, alpha and the bound alpha c L~ eps_2 (NaN without R_max)."""
    lipschitz = lipschitz_surrogate(policy.actor)
    c = tv_constant(policy)
    radius = l2_radius(eps, norm, policy.obs_dim)
    a = alpha(gamma, r_max) if r_max is not None else math.nan
    return {
        "lipschitz": lipschitz,
        "c": c,
        "eps_l2": radius,
        "tv_bound": c * lipschitz * radius,
        "alpha": a,
        "bound": a * c * lipschitz * radius,
    }


@torch.no_grad()
def ibp_tv_bound(policy: Any, obs: torch.Tensor, eps: float, norm: str = "inf") -> torch.Tensor:
    """Per state: an upper bound on TV_max(s) = max over s' in B(s) of TV(pi(.|s), pi(.|s')), from
    interval bounds of the actor over the box around the ball (``obs``: normalised observations;
    an l_2 ball uses its enclosing l_inf box of the same radius).

    Gaussian (diagonal Sigma, equal for s and s'): TV = 2 Phi(D / 2) - 1 with D = ||(mu' - mu) /
    sigma||_2, increasing in D, and |mu'_i - mu_i| <= max(u_i - mu_i, mu_i - l_i) for [l, u] the
    interval of mu_i: the bound is 2 Phi(D_max / 2) - 1. Softmax: p'_i lies in [e^{l_i} /
    (e^{l_i} + sum_{j != i} e^{u_j}), e^{u_i} / (e^{u_i} + sum_{j != i} e^{l_j})], and TV =
    sum_i (p'_i - p_i)^+ = sum_i (p_i - p'_i)^+, so the smaller of the two sums of the extremes
    bounds it (capped at 1)."""
    lower, upper = interval_bounds(policy.actor, obs - eps, obs + eps)
    centre = policy.actor(obs)
    if policy.continuous:
        sigma = policy.log_std.exp()
        deviation = torch.maximum(upper - centre, centre - lower) / sigma
        distance = torch.linalg.vector_norm(deviation, dim=-1)
        return torch.erf(distance / (2.0 * math.sqrt(2.0)))  # 2 Phi(D/2) - 1 = erf(D / (2 sqrt 2))
    probs = torch.softmax(centre, -1)
    exp_lower, exp_upper = lower.exp(), upper.exp()
    sum_lower, sum_upper = exp_lower.sum(-1, keepdim=True), exp_upper.sum(-1, keepdim=True)
    p_high = exp_upper / (exp_upper + sum_lower - exp_lower)
    p_low = exp_lower / (exp_lower + sum_upper - exp_upper)
    up = (p_high - probs).clamp_min(0).sum(-1)
    down = (probs - p_low).clamp_min(0).sum(-1)
    return torch.minimum(torch.minimum(up, down), torch.ones_like(up))


def exact_tv(policy: Any, obs: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """TV(pi(.|obs), pi(.|other)) per row, in closed form (Gaussian with equal covariance:
    2 Phi(D/2) - 1; categorical: half the l_1 distance)."""
    with torch.no_grad():
        a, b = policy.actor(obs), policy.actor(other)
        if policy.continuous:
            distance = torch.linalg.vector_norm((a - b) / policy.log_std.exp(), dim=-1)
            return torch.erf(distance / (2.0 * math.sqrt(2.0)))
        return 0.5 * (torch.softmax(a, -1) - torch.softmax(b, -1)).abs().sum(-1)
