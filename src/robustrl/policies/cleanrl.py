"""CleanRL checkpoints as attackable policies.

CleanRL's ``ppo_continuous_action.py`` saves its ``Agent`` with ``torch.save(agent.state_dict(),
"runs/<run>/<exp>.cleanrl_model")``: a critic ``critic.{0,2,4}`` and an actor mean
``actor_mean.{0,2,4}`` (Linear layers with Tanh between them), and a state-independent
``actor_logstd`` of shape (1, actions). The policy is Normal(actor_mean(obs), exp(actor_logstd));
the env clips actions to the bounds (``ClipAction``). ``ppo.py`` (discrete actions) saves ``actor``
logits instead of ``actor_mean``. We read the layer sizes from the tensor shapes, so other widths
and depths load too; the activation is CleanRL's Tanh.

CleanRL normalises observations with Gymnasium's ``NormalizeObservation`` (running mean/var,
``(obs - mean) / sqrt(var + 1e-8)``) and clips them to [-10, 10], but saves no statistics. Give them
separately (``obs_stats``: ``.npz``/``.json`` with ``obs_mean``, ``obs_var``, optional ``clip_obs``,
``epsilon``: the same format as an exported VecNormalize), or leave them out: the policy then sees
raw observations, and eps is in raw units (``perturbation_space`` says so, and every report too).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from robustrl.envs.normalization import ObservationNormalizer
from robustrl.errors import CheckpointError
from robustrl.policies.adapters import (
    PathLike,
    _categorical_sample,
    _env_spaces,
    _first_line,
    _ForeignPolicy,
    _mlp,
    load_vecnormalize_stats,
)

SUFFIX = ".cleanrl_model"


class CleanRLPolicy(_ForeignPolicy):
    """CleanRL's PPO ``Agent`` (continuous: ``ppo_continuous_action.py``; discrete: ``ppo.py``),
    rebuilt from its state dict. Submodules carry CleanRL's names, so the file loads ``strict``."""

    def __init__(
        self,
        state: dict[str, torch.Tensor],
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Space,
        normalizer: ObservationNormalizer | None,
        env_id: str,
        source: PathLike = "<CleanRL model>",
    ):
        super().__init__()
        self._set_spaces(observation_space, action_space, env_id)
        actor_key = "actor_mean" if self.continuous else "actor"
        if f"{actor_key}.0.weight" not in state or "critic.0.weight" not in state:
            kind = (
                "continuous (ppo_continuous_action.py: actor_mean, actor_logstd, critic)"
                if self.continuous
                else "discrete (ppo.py: actor, critic)"
            )
            raise CheckpointError(
                f"{source}: not a CleanRL PPO Agent state dict for {env_id}'s {kind} actions; "
                f"it holds {sorted(state)[:4]}"
            )
        actor, out_dim = _mlp(state, f"{actor_key}.", self.obs_dim, nn.Tanh, source, last_activation=None)
        setattr(self, actor_key, actor)
        self.critic, value_dim = _mlp(state, "critic.", self.obs_dim, nn.Tanh, source, last_activation=None)
        if out_dim != self.action_dim or value_dim != 1:
            raise CheckpointError(
                f"{source}: the actor outputs {out_dim} values and the critic {value_dim}; "
                f"{env_id} needs {self.action_dim} and 1"
            )
        if self.continuous:
            self.actor_logstd = nn.Parameter(torch.zeros(1, self.action_dim))
        expected = self.state_dict()
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or extra:
            raise CheckpointError(
                f"{source}: unexpected CleanRL Agent layout (missing {missing[:4]}, unexpected {extra[:4]})"
            )
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise CheckpointError(
                    f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
                )
        self.load_state_dict(state)
        self.normalizer = normalizer or ObservationNormalizer(observation_space.shape, enabled=False)
        self.perturbation_space = (
            "normalised observations (the given CleanRL observation statistics)"
            if self.normalizer.enabled
            else "raw observations (CleanRL saves no normaliser)"
        )
        self.eval()

    def _head(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor_mean(obs) if self.continuous else self.actor(obs)

    def distribution(self, obs: torch.Tensor) -> Distribution:
        out = self._head(obs)
        if self.continuous:
            return Normal(out, self.actor_logstd.exp().expand_as(out), validate_args=False)
        return Categorical(logits=out, validate_args=False)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        out = self._head(obs)
        return out if self.continuous else out.argmax(-1)

    def normalize(self, raw_obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.normalizer(raw_obs))

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        out = self._head(obs).numpy()
        if not self.continuous:
            return out.argmax(-1) if deterministic else _categorical_sample(out, rng)
        if deterministic:
            return out
        std = self.actor_logstd.exp().numpy()
        return (out + std * rng.standard_normal(out.shape)).astype(np.float32)

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        return np.clip(actions, self._low, self._high) if self.continuous else actions


def load_cleanrl(
    path: PathLike, env_id: str, *, obs_stats: PathLike | None = None, trust_pickle: bool = False
) -> CleanRLPolicy:
    """Load a CleanRL PPO ``Agent`` state dict (``.cleanrl_model``) for ``env_id``.

    ``obs_stats``: the observation statistics it was trained with (see module docstring); without
    them eps is in raw observation units. The file is read with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise CheckpointError(f"{path} is not a weights-only torch state dict ({_first_line(error)})") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} is not a state dict of tensors (save it with torch.save(agent.state_dict(), ...))"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} holds NaN or inf")
    observation_space, action_space = _env_spaces(env_id)
    normalizer = None
    if obs_stats is not None:
        normalizer = load_vecnormalize_stats(obs_stats, observation_space.shape, trust_pickle=trust_pickle)
    policy = CleanRLPolicy(state, observation_space, action_space, normalizer, env_id, path)
    policy.checkpoint = str(path)
    return policy
