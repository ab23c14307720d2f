"""Vectorised episodes of a fixed policy, clean or under an observation perturbation.

The one place a policy is run for whole episodes: evaluation (:mod:`robustrl.evaluate`, which
re-exports these names from :mod:`robustrl.evaluate.rollout`) and the learned attacks' selection
of their strongest candidate (:mod:`robustrl.attacks`) both use it, so it lives below both.

Each of the ``num_envs`` environments runs a fixed quota of episodes (``episodes`` split as evenly
as possible), so short episodes are not over-represented as they would be if we simply stopped at
the first ``episodes`` completions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from robustrl.envs.make import make_env, require_finite
from robustrl.errors import InvalidArgumentError
from robustrl.policies.protocol import AttackablePolicy
from robustrl.threads import with_torch_threads

__all__ = ["EpisodeResults", "Perturbation", "run_episodes"]

# perturb(normalised observations) -> perturbed normalised observations (same shape)
Perturbation = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EpisodeResults:
    returns: np.ndarray
    lengths: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    def summary(self) -> dict[str, float]:
        return {
            "mean": self.mean,
            "std": self.std,
            "min": float(self.returns.min()),
            "max": float(self.returns.max()),
            "episodes": len(self.returns),
            "mean_length": float(self.lengths.mean()),
        }


@with_torch_threads
def run_episodes(
    policy: AttackablePolicy,
    env_id: str,
    episodes: int = 50,
    *,
    deterministic: bool = True,
    seed: int = 0,
    num_envs: int | None = None,
    backend: str = "gymnasium",
    perturb: Perturbation | None = None,
    on_episode: Callable[[float], None] | None = None,
) -> EpisodeResults:
    """Run ``episodes`` episodes of ``policy`` (normaliser frozen) and return their raw returns.

    ``perturb`` maps the batch of normalised observations to the observations the policy acts on
    (an attack); the environment itself is never changed.
    """
    if episodes < 1:
        raise InvalidArgumentError(f"episodes must be >= 1, got {episodes}")
    num_envs = min(episodes, num_envs or 10)
    quotas = np.full(num_envs, episodes // num_envs)
    quotas[: episodes % num_envs] += 1
    env = make_env(env_id, num_envs, seed, backend)
    if env.single_observation_space.shape != policy.observation_space.shape:
        env.close()
        raise InvalidArgumentError(
            f"policy expects observations of shape {policy.observation_space.shape}, "
            f"{env_id} gives {env.single_observation_space.shape}"
        )
    rng = np.random.default_rng(seed)
    returns: list[list[float]] = [[] for _ in range(num_envs)]
    lengths: list[list[int]] = [[] for _ in range(num_envs)]
    running_return = np.zeros(num_envs)
    running_length = np.zeros(num_envs, dtype=np.int64)
    try:
        obs, _ = env.reset(seed=[seed + i for i in range(num_envs)])
        while any(len(r) < q for r, q in zip(returns, quotas)):
            require_finite(obs, env_id)
            with torch.no_grad():
                normalized = policy.normalize(obs)
                if perturb is not None:
                    normalized = perturb(normalized)
                actions = policy.sample(normalized, rng, deterministic)
            obs, reward, terminated, truncated, _ = env.step(policy.to_env_action(actions))
            running_return += reward
            running_length += 1
            for i in np.flatnonzero(terminated | truncated):
                if len(returns[i]) < quotas[i]:
                    returns[i].append(float(running_return[i]))
                    lengths[i].append(int(running_length[i]))
                    if on_episode is not None:
                        on_episode(float(running_return[i]))
                running_return[i], running_length[i] = 0.0, 0
    finally:
        env.close()
    return EpisodeResults(np.array(sum(returns, [])), np.array(sum(lengths, [])))
