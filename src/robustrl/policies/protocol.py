"""The face every attackable policy shows: ours (:class:`ActorCritic`) and the adapters for
foreign policies (Stable-Baselines3 zips, plain torch modules).

Attacks, evaluation rollouts and robust objectives only use what is listed here, so anything with
this face can be evaluated and attacked. Observations come in two spaces:

- *raw*: what the environment emits (numpy, batch first);
- *perturbation space*: what :meth:`normalize` returns and every network method takes. The attack
  radius eps is defined here. For our policies it is the running mean/std normalised space (as in
  SA-PPO and its descendants); for an SB3 model it is its VecNormalize space, or the raw space when
  it has none. ``perturbation_space`` says which, in words, and every report prints it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from torch.distributions import Distribution


@runtime_checkable
class AttackablePolicy(Protocol):
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Space
    continuous: bool
    obs_dim: int
    action_dim: int  # continuous: action dimensions; discrete: number of actions
    env_id: str | None
    perturbation_space: str  # e.g. "normalised observations (policy's running mean/std)"

    def normalize(self, raw_obs: np.ndarray) -> torch.Tensor:
        """Raw observations -> the perturbation space (float32 tensor, no gradient)."""

    def distribution(self, obs: torch.Tensor) -> Distribution:
        """pi(.|obs) for perturbation-space observations (differentiable in ``obs``)."""

    def log_prob(self, dist: Distribution, actions: torch.Tensor) -> torch.Tensor:
        """Joint log-likelihood per sample."""

    def entropy(self, dist: Distribution) -> torch.Tensor:
        """Joint entropy per sample."""

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """A state value V(obs), shape (batch,), differentiable in ``obs`` (critic attack)."""

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action, differentiable in ``obs`` for continuous actions."""

    def sample(self, obs: torch.Tensor, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        """Actions (numpy) for perturbation-space observations, before :meth:`to_env_action`."""

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        """Map sampled actions to what the env accepts (clip / squash / rescale)."""
