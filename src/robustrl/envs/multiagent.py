"""Two-player (and n-player) environments behind the PettingZoo parallel API, and the
single-agent view a trainer or an evaluation sees: one player learns or is evaluated, the others
are *opponents* with a fixed policy (frozen, benign, or partly controlled by an attacker).

An opponent is anything with ``act(obs) -> action`` for one raw observation and ``reset(seed)``
(:class:`OpponentPolicy`). :class:`OpponentView` is a plain ``gymnasium.Env``, so
:func:`robustrl.envs.make_env` vectorises it with the usual same-step autoreset, the PPO loop
trains on it and every evaluation runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class OpponentPolicy(Protocol):
    """A fixed policy acting for one agent of a multi-agent env."""

    def act(self, obs: np.ndarray) -> Any:
        """The action for one raw observation (what the env expects for that agent)."""

    def reset(self, seed: int | None = None) -> None:
        """Start of an episode (reseed any randomness)."""


class RandomOpponent:
    """Uniformly random actions from an action space (seeded per episode)."""

    def __init__(self, action_space: gym.spaces.Space, seed: int = 0):
        self.action_space = action_space
        self.action_space.seed(seed)

    def act(self, obs: np.ndarray) -> Any:
        return self.action_space.sample()

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.action_space.seed(seed)


class FrozenPolicy:
    """One of our policies (anything with the :class:`~robustrl.policies.protocol.AttackablePolicy`
    face) playing as an opponent, frozen: no normaliser updates, no gradients."""

    def __init__(self, policy: Any, deterministic: bool = False, seed: int = 0):
        self.policy, self.deterministic = policy, deterministic
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> Any:
        import torch

        with torch.no_grad():
            action = self.policy.sample(self.policy.normalize(np.asarray(obs)[None]), self.rng, self.deterministic)
        return self.policy.to_env_action(action)[0]

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)


class CallableOpponent:
    """``fn(obs, rng) -> action`` as an opponent (e.g. a fixed mixed strategy in a matrix game)."""

    def __init__(self, fn: Callable[[np.ndarray, np.random.Generator], Any], seed: int = 0):
        self.fn, self.rng = fn, np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> Any:
        return self.fn(obs, self.rng)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)


class OpponentView(gym.Env):
    """The single-agent Gymnasium view of a PettingZoo parallel env for agent ``player``; every
    other agent acts by its :class:`OpponentPolicy`.

    The episode ends (for the player) when the player terminates or truncates, or when no agent is
    left; ``info["opponent_rewards"]`` holds the others' rewards of the step, so zero-sum or stealth
    measures can be computed from the same rollout. Opponents are reseeded from the episode's seed
    (``seed + 1 + k`` for the k-th opponent), so a seeded reset fixes the whole episode.
    """

    metadata = {"render_modes": []}

    def __init__(self, env: Any, player: str, opponents: Mapping[str, OpponentPolicy]):
        self.env, self.player = env, player
        agents = list(env.possible_agents)
        if player not in agents:
            raise ValueError(f"{player!r} is not an agent of this env (agents: {agents})")
        missing = set(agents) - {player} - set(opponents)
        if missing:
            raise ValueError(f"no opponent policy for agent(s) {sorted(missing)}")
        self.opponents = {a: opponents[a] for a in agents if a != player}
        self.observation_space = env.observation_space(player)
        self.action_space = env.action_space(player)
        self._obs: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._obs, infos = self.env.reset(seed=seed, options=options)
        for k, opponent in enumerate(self.opponents.values()):
            opponent.reset(None if seed is None else seed + 1 + k)
        return self._obs[self.player], infos.get(self.player, {})

    def step(self, action: Any):
        actions = {a: opponent.act(self._obs[a]) for a, opponent in self.opponents.items() if a in self._obs}
        actions[self.player] = action
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        self._obs = obs
        info = dict(infos.get(self.player, {}))
        info["opponent_rewards"] = {a: float(r) for a, r in rewards.items() if a != self.player}
        terminated = bool(terminations.get(self.player, False))
        truncated = bool(truncations.get(self.player, False)) or (not terminated and not self.env.agents)
        return obs.get(self.player), float(rewards.get(self.player, 0.0)), terminated, truncated, info

    def close(self) -> None:
        self.env.close()


def opponent_view(
    env_fn: Callable[[], Any],
    player: str,
    opponents: Mapping[str, OpponentPolicy] | Callable[[], Mapping[str, OpponentPolicy]],
) -> Callable[[], OpponentView]:
    """An env factory for :func:`robustrl.envs.make_env`: each copy gets its own env and, if
    ``opponents`` is a callable, its own opponents (so their random streams are independent)."""

    def make() -> OpponentView:
        chosen = opponents() if callable(opponents) else opponents
        return OpponentView(env_fn(), player, chosen)

    return make
