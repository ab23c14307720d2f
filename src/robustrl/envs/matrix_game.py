"""A repeated two-player zero-sum matrix game behind the PettingZoo parallel API.

Each step both players pick an action at once; ``player_0`` receives ``payoff[a0, a1]`` and
``player_1`` its negative. Each player observes the previous joint action (one-hot, plus a "first
step" flag), so history-dependent policies are possible. The episode is truncated after
``horizon`` steps. The smallest multi-agent env with exact answers: against a fixed mixed
strategy y, the best response earns ``horizon * max_a (payoff @ y)[a]``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

ROCK_PAPER_SCISSORS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
MATCHING_PENNIES = np.array([[1.0, -1.0], [-1.0, 1.0]])


class RepeatedMatrixGame(ParallelEnv):
    metadata = {"name": "repeated_matrix_game_v0", "render_modes": []}

    def __init__(self, payoff: Any = MATCHING_PENNIES, horizon: int = 10):
        payoff = np.asarray(payoff, dtype=np.float64)
        if payoff.ndim != 2 or min(payoff.shape) < 1:
            raise ValueError(f"payoff must be a 2-d matrix (player_0's actions x player_1's), got shape {payoff.shape}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.payoff, self.horizon = payoff, int(horizon)
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        size = payoff.shape[0] * payoff.shape[1] + 1
        self._observation_space = gym.spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        self._action_spaces = {
            "player_0": gym.spaces.Discrete(payoff.shape[0]),
            "player_1": gym.spaces.Discrete(payoff.shape[1]),
        }
        self._t = 0

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return self._observation_space

    def action_space(self, agent: str) -> gym.spaces.Discrete:
        return self._action_spaces[agent]

    def _observe(self, joint: tuple[int, int] | None) -> dict[str, np.ndarray]:
        obs = np.zeros(self._observation_space.shape, dtype=np.float32)
        if joint is None:
            obs[-1] = 1.0
        else:
            obs[joint[0] * self.payoff.shape[1] + joint[1]] = 1.0
        return {agent: obs.copy() for agent in self.agents}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        # deterministic dynamics: the seed only matters to the players' own randomness
        self.agents = list(self.possible_agents)
        self._t = 0
        return self._observe(None), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]):
        a0, a1 = int(actions["player_0"]), int(actions["player_1"])
        reward = float(self.payoff[a0, a1])
        self._t += 1
        obs = self._observe((a0, a1))
        rewards = {"player_0": reward, "player_1": -reward}
        done = self._t >= self.horizon
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, done)
        infos = {agent: {} for agent in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos
