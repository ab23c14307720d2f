"""Tiny environments and a hand-written victim whose optimal observation adversary is known in
closed form, for exact-answer tests (OpenSpiel's style: assert the answer, not a threshold).

``SignGuess``: each step shows the true state x in {-1, +1} (a fair coin, one coordinate); the
agent says "positive" (action 1) or "negative" (action 0) and earns 1 when it is right. Episodes
last ``length`` steps and end by termination.

- ``SIGN_GUESS`` (``RobustRLTest/SignGuess-v0``): every episode lasts 5 steps.
- ``SIGN_GUESS_UNEVEN`` (``RobustRLTest/SignGuessUneven-v0``): a copy reset with seed k runs
  episodes of 1 + k % 4 steps until it is seeded again, so the copies of a vector env seeded
  seed, seed+1, ... have episodes of different lengths (what an episode quota must handle).

:func:`sign_victim` acts as sign(x) on (-2, 2): the optimal adversary with radius eps > 1 flips the
sign at every step (return 0), and with eps < 1 it can do nothing (return = episode length).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.policies.adapters import TorchModulePolicy

SIGN_GUESS = "RobustRLTest/SignGuess-v0"
SIGN_GUESS_UNEVEN = "RobustRLTest/SignGuessUneven-v0"
EPISODE_LENGTH = 5  # of SIGN_GUESS


class SignGuessEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int | None = EPISODE_LENGTH):
        self.fixed_length = length
        self.length = length or 1
        self.t, self.x = 0, 1.0

    def _draw(self) -> np.ndarray:
        self.x = float(self.np_random.choice([-1.0, 1.0]))
        return np.array([self.x], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None and self.fixed_length is None:
            self.length = 1 + seed % 4
        self.t = 0
        return self._draw(), {}

    def step(self, action):
        reward = float((int(action) == 1) == (self.x > 0))
        self.t += 1
        return self._draw(), reward, self.t >= self.length, False, {}


for _id, _length in ((SIGN_GUESS, EPISODE_LENGTH), (SIGN_GUESS_UNEVEN, None)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=SignGuessEnv, kwargs={"length": _length})


class _PeriodicSign(nn.Module):
    """Logits (-c sin(pi x / 2), c sin(pi x / 2)): action 1 iff sin(pi x / 2) > 0, i.e. sign(x)
    on (-2, 2). Periodic rather than monotone so that the action divergence KL(pi(x) || pi(x_hat))
    grows on *both* sides of each state x = +-1 up to a flip at distance 2; a local maximiser
    such as MAD (SGLD from a random first step) then reaches a flip whichever way it starts,
    while on a monotone policy the side away from 0 only makes the agent more confident."""

    def __init__(self, confidence: float = 1.0):
        super().__init__()
        self.confidence = confidence

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        score = self.confidence * torch.sin(math.pi / 2 * obs[..., 0])
        return torch.stack([-score, score], -1)


def sign_victim(env_id: str = SIGN_GUESS) -> TorchModulePolicy:
    """The SignGuess victim (deterministic: the arg-max action); eps is in raw observations."""
    env = gym.make(env_id)
    try:
        return TorchModulePolicy(
            _PeriodicSign(), env.observation_space, env.action_space, output="logits", env_id=env_id
        )
    finally:
        env.close()
