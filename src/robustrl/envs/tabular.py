"""Bridge from the exact theory lab to the deep-RL code: a tabular ISA-MDP as a Gymnasium env.

Each state s is shown as a point ``points[s]`` in R^d; the env's l_inf ball of radius ``eps``
around points[s] contains exactly the points of B(s) (checked: ``FiniteSet.within(points, eps)``
must give the MDP's B(s)), so the attacks and robust trainers, which perturb observations inside
the ball, face the same threat model as the exact strongest adversary nu*, plus the off-grid
points between states. With observation normalisation off (``normalize_observations=False``) the
ball lives in these raw coordinates.

- :class:`TabularISAEnv`: observations points[s], Discrete(A) actions, rewards r(s, a), next
  states from P, episodes truncated after ``horizon`` steps (PPO bootstraps them).
- :func:`tabular_policy`: a trained network read back as pi[s, a] = pi(a | points[s]).
- :func:`attack_as_adversary`: what an attack does to each state, both as applied (the policy at
  the perturbed, possibly off-grid observation) and snapped to the nearest point of B(s) (an
  adversary nu of the tabular ISA-MDP, to compare with nu*).

This module needs torch and gymnasium; ``robustrl.theory`` does not import it.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.errors import InvalidArgumentError
from robustrl.theory.mdp import TabularISAMDP
from robustrl.theory.toy import toy_isa_mdp
from robustrl.threat.finite import FiniteSet

__all__ = [
    "TOY_CONTINUOUS_ENV_ID",
    "TOY_ENV_ID",
    "TOY_EPS",
    "TOY_POINTS",
    "TabularISAEnv",
    "attack_as_adversary",
    "tabular_policy",
]

TOY_ENV_ID = "RobustRLTheory/ToyISA-v0"  # Discrete(A) actions
# Box(-1, 1) actions binned into the A actions (bin k = [-1 + 2k/A, -1 + 2(k+1)/A], tails to the end
# bins): for Gaussian-policy code (robust Sarsa, WocaR) and the papers' continuous-control setting
TOY_CONTINUOUS_ENV_ID = "RobustRLTheory/ToyISAContinuous-v0"
TOY_POINTS = np.array([[0.0], [1.0]])  # s1 at 0, s2 at 1: an l_inf ball of radius 1 reaches the other state
TOY_EPS = 1.0


def check_embedding(mdp: TabularISAMDP, points: Any, eps: float) -> np.ndarray:
    """points as an (S, d) array whose l_inf eps-balls hold exactly B(s) (as sets)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != mdp.num_states:
        raise InvalidArgumentError(f"points must have shape ({mdp.num_states}, d), got {points.shape}")
    balls = FiniteSet.within(points, eps, "inf")
    for s, (ball, admissible) in enumerate(zip(balls.admissible, mdp.perturbation_sets.admissible)):
        if set(ball) != set(admissible):
            raise InvalidArgumentError(
                f"the l_inf ball of radius {eps:g} around points[{s}] holds states {sorted(ball)}, but B({s}) = "
                f"{sorted(admissible)}: choose points and eps that reproduce B(s)"
            )
    return points


class TabularISAEnv(gym.Env):
    """The ISA-MDP ``mdp`` (default: the BARPO toy of Appendix D) with observations points[s]."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        mdp: TabularISAMDP | None = None,
        points: Any = None,
        eps: float = TOY_EPS,
        horizon: int = 60,
        continuous_actions: bool = False,
    ):
        self.mdp = mdp or toy_isa_mdp()
        self.points = check_embedding(self.mdp, TOY_POINTS if points is None else points, eps)
        self.eps = float(eps)
        self.horizon = int(horizon)
        low, high = self.points.min(0) - eps, self.points.max(0) + eps
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.continuous_actions = bool(continuous_actions)
        if self.continuous_actions:
            self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        else:
            self.action_space = gym.spaces.Discrete(self.mdp.num_actions)
        self.state, self.t = 0, 0

    def _observation(self) -> np.ndarray:
        return self.points[self.state].astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(self.mdp.num_states, p=self.mdp.initial_distribution))
        self.t = 0
        return self._observation(), {"state": self.state}

    def step(self, action):
        if self.continuous_actions:
            action = int(np.sum(float(np.asarray(action).reshape(-1)[0]) > bin_edges(self.mdp.num_actions)))
        action = int(action)
        reward = float(self.mdp.rewards[self.state, action])
        self.state = int(self.np_random.choice(self.mdp.num_states, p=self.mdp.transitions[self.state, action]))
        self.t += 1
        return self._observation(), reward, False, self.t >= self.horizon, {"state": self.state}


def bin_edges(num_actions: int) -> np.ndarray:
    """Inner edges of the action bins of the continuous-action variant: -1 + 2k / A, k = 1..A-1."""
    return -1.0 + 2.0 * np.arange(1, num_actions) / num_actions


for _id, _continuous in ((TOY_ENV_ID, False), (TOY_CONTINUOUS_ENV_ID, True)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=TabularISAEnv, kwargs={"continuous_actions": _continuous})


@torch.no_grad()
def tabular_policy(policy: Any, points: Any = TOY_POINTS) -> np.ndarray:
    """pi[s, a] = the network's action probabilities at observation points[s]."""
    obs = policy.normalize(np.asarray(points, dtype=np.float32))
    return _action_probabilities(policy, obs)


def _action_probabilities(policy: Any, obs: torch.Tensor) -> np.ndarray:
    """pi[s, a] as float64 rows summing to 1: the categorical probabilities, or for a Gaussian
    policy on the continuous-action variant the mass of each action bin (Phi differences)."""
    distribution = policy.distribution(obs)
    if getattr(policy, "continuous", False):
        mean = distribution.loc[:, 0].double().numpy()
        std = distribution.scale[:, 0].double().numpy()
        num_actions = getattr(policy, "tabular_actions", 2)
        edges = np.concatenate([[-np.inf], bin_edges(num_actions), [np.inf]])
        cdf = 0.5 * (1.0 + np.vectorize(math.erf)((edges[None, :] - mean[:, None]) / (std[:, None] * math.sqrt(2.0))))
        rows = np.diff(cdf, axis=-1)
    else:
        rows = distribution.probs.double().numpy()
    return rows / rows.sum(-1, keepdims=True)


@torch.no_grad()
def attack_as_adversary(attack: Any, policy: Any, mdp: TabularISAMDP, points: Any = TOY_POINTS) -> dict[str, Any]:
    """Apply ``attack.perturb`` once to every state's observation. Returns ``perturbed`` (the
    observations shown), ``applied`` (pi at them: the effective policy pi o attack, exact for a
    deterministic attack), and ``snapped``: the adversary nu[s] = the point of B(s) nearest (l_2)
    to the perturbed observation. Observations must be unnormalised (normalize_observations=False)
    for the snapping to be meaningful; a running normaliser is refused."""
    points = np.asarray(points, dtype=np.float64)
    obs = policy.normalize(points.astype(np.float32))
    if not np.allclose(obs.double().numpy(), points, atol=1e-6):
        raise InvalidArgumentError("attack_as_adversary needs a policy without observation normalisation")
    perturbed = attack.perturb(obs)
    applied = _action_probabilities(policy, perturbed)
    shown = perturbed.double().numpy()
    nu = np.empty(mdp.num_states, dtype=np.int64)
    for s, admissible in enumerate(mdp.perturbation_sets.admissible):
        candidates = np.array(admissible)
        nu[s] = candidates[np.linalg.norm(points[candidates] - shown[s], axis=-1).argmin()]
    return {"perturbed": shown, "applied": applied, "snapped": nu}
