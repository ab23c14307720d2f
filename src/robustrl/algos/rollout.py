"""Rollout collection: step environments with policies and fill the batches PPO's update consumes.

The update never owns an env: a *collector* does. Two collectors share one trajectory buffer
(GAE, Schulman et al. 2016, eq. 16, with truncations bootstrapped from V(final observation)):

- :class:`RolloutCollector`: one policy acting in a Gymnasium vector env with same-step autoreset
  (:func:`robustrl.envs.make_env`). A frozen or partial-control opponent lives *inside* that env
  (:class:`robustrl.envs.multiagent.OpponentView`), so training against an opponent is this
  collector on that env.
- :class:`MultiAgentCollector`: several policies acting in copies of one PettingZoo parallel env
  (two-player self-play, adversarial training of both agents): one batch per agent.

A :class:`Batch` carries the scaled rewards and episode ends of every step, besides what the
clipped surrogate needs, so objectives that need them (WocaR's worst-case critic) read them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robustrl.envs.normalization import RewardScaler
from robustrl.errors import NonFiniteObservationError


@dataclass
class Batch:
    """Transitions for the update, flattened over (time, env). ``obs`` is normalised."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    # Per-sample tensors an objective attaches in ``prepare`` (e.g. the inner problem's solution
    # ``obs_hat``); minibatches carry the matching rows.
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    # The (scaled) reward of each step and whether an episode ended with it (terminated or
    # truncated); None for batches built by hand.
    rewards: torch.Tensor | None = None
    dones: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]

    def select(self, indices: torch.Tensor | slice) -> Batch:
        """Rows ``indices`` (an index tensor copies; a slice gives views)."""
        columns = {
            name: None if (value := getattr(self, name)) is None else value[indices]
            for name in self.__dataclass_fields__
            if name != "extras"
        }
        return Batch(**columns, extras={key: value[indices] for key, value in self.extras.items()})


def normalized_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """(A - mean A) / (std A + 1e-8): PPO's per-minibatch advantage normalisation (the reference
    code's), shared by the loss, the robust objectives' inner solves and the sumo diagnostics."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over arrays of shape (time, env).

    ``next_values[t]`` is the value of the state reached after step t, already zero where that
    state is terminal (and V(final observation) where the episode was truncated). ``dones[t]``
    stops the recursion at episode ends. Returns (advantages, value targets).
    """
    advantages = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * next_values[t] - values[t]
        running = delta + gamma * gae_lambda * (1.0 - dones[t]) * running
        advantages[t] = running
    return advantages, advantages + values


def require_finite(array: Any, what: str) -> None:
    """Raise :class:`NonFiniteObservationError` ("non-finite <what>") if ``array`` holds NaN or inf.
    Numeric arrays are checked as they are (no float64 copy: this runs three times per env step)."""
    values = np.asarray(array)
    if values.dtype.kind not in "fiub":
        values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise NonFiniteObservationError(f"non-finite {what} (NaN or inf)")


class TrajectoryBuffer:
    """(time, env) arrays of one policy's transitions, turned into a :class:`Batch` by GAE."""

    def __init__(self, policy: Any, steps: int, num_envs: int):
        self.policy = policy
        # numpy (float32, as the torch buffer it replaces): one tensor view at the end instead of
        # a torch write per step
        self.obs = np.zeros((steps, num_envs, policy.obs_dim), dtype=np.float32)
        self.actions = np.zeros((steps, num_envs, *policy.action_space.shape), dtype=np.float32)
        self.rewards = np.zeros((steps, num_envs))
        self.terminated = np.zeros((steps, num_envs), dtype=bool)
        self.truncated = np.zeros((steps, num_envs), dtype=bool)
        self.final_obs: list[tuple[int, int, torch.Tensor]] = []  # (t, env, normalised obs) at truncations

    def add(
        self, t: int, obs: torch.Tensor | np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated, truncated
    ) -> None:
        self.obs[t] = obs.numpy() if isinstance(obs, torch.Tensor) else obs
        self.actions[t] = actions.reshape(self.actions[t].shape)
        self.rewards[t] = rewards
        self.terminated[t], self.truncated[t] = terminated, truncated

    def add_final_obs(self, t: int, env: int, raw_obs: np.ndarray) -> None:
        """The last observation of an episode cut by a time limit, to bootstrap V from."""
        self.final_obs.append((t, env, self.policy.normalize(raw_obs[None])[0]))

    def batch(self, last_raw_obs: np.ndarray, gamma: float, gae_lambda: float) -> Batch:
        """Old log-probs and values in one batched forward pass (not one per step), then GAE."""
        policy = self.policy
        steps, num_envs = self.rewards.shape
        flat_obs = torch.from_numpy(self.obs.reshape(steps * num_envs, -1))
        flat_actions = torch.as_tensor(self.actions.reshape(steps * num_envs, *policy.action_space.shape))
        values = policy.value(flat_obs).reshape(steps, num_envs).numpy().astype(np.float64)
        log_probs = policy.log_prob_and_entropy(flat_obs, flat_actions)[0]  # the update's formula: ratio 1 at start
        # next_values[t] = V(s_{t+1}); 0 after a termination; V(final obs) after a truncation.
        last_value = policy.value(policy.normalize(last_raw_obs)).numpy().astype(np.float64)
        next_values = np.concatenate([values[1:], last_value[None]], axis=0)
        dones = self.terminated | self.truncated
        next_values[dones] = 0.0
        if self.final_obs:
            bootstrap = policy.value(torch.stack([o for _, _, o in self.final_obs])).numpy()
            for (t, i, _), v in zip(self.final_obs, bootstrap):
                next_values[t, i] = v
        advantages, returns = compute_gae(
            self.rewards, values, next_values, dones.astype(np.float64), gamma, gae_lambda
        )
        return Batch(
            obs=flat_obs,
            actions=flat_actions,
            log_probs=log_probs,
            values=torch.as_tensor(values.reshape(-1), dtype=torch.float32),
            advantages=torch.as_tensor(advantages.reshape(-1), dtype=torch.float32),
            returns=torch.as_tensor(returns.reshape(-1), dtype=torch.float32),
            rewards=torch.as_tensor(self.rewards.reshape(-1), dtype=torch.float32),
            dones=torch.as_tensor(dones.reshape(-1), dtype=torch.float32),
        )


class EpisodeBook:
    """Raw (unscaled) returns of running and finished episodes, per env."""

    def __init__(self, num_envs: int):
        self.episode_return = np.zeros(num_envs)
        self.episode_length = np.zeros(num_envs, dtype=np.int64)
        self.recent_returns: deque[float] = deque(maxlen=100)
        self.total_episodes = 0

    def step(self, rewards: np.ndarray, dones: np.ndarray) -> list[float]:
        self.episode_return += rewards
        self.episode_length += 1
        finished = [float(self.episode_return[i]) for i in np.flatnonzero(dones)]
        self.episode_return[dones] = 0.0
        self.episode_length[dones] = 0
        self.recent_returns.extend(finished)
        self.total_episodes += len(finished)
        return finished

    def state_dict(self) -> dict[str, Any]:
        return {
            "episode_return": self.episode_return.tolist(),
            "episode_length": self.episode_length.tolist(),
            "recent_returns": list(self.recent_returns),
            "total_episodes": self.total_episodes,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.episode_return = np.asarray(state["episode_return"], dtype=np.float64)
        self.episode_length = np.asarray(state["episode_length"], dtype=np.int64)
        self.recent_returns = deque(state["recent_returns"], maxlen=100)
        self.total_episodes = int(state["total_episodes"])

    def forget_running(self) -> None:
        """Fresh episodes after a resume that could not restore the envs."""
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0


class RolloutCollector:
    """One policy in a vector env: ``collect()`` returns ``steps_per_env`` steps of every env as a
    :class:`Batch` and the raw returns of the episodes that ended.

    Args:
        env: a Gymnasium vector env with same-step autoreset (``info["final_obs"]`` at episode ends).
        policy: the acting policy (our :class:`~robustrl.policies.actor_critic.ActorCritic`).
        steps_per_env: steps per env per call.
        rng: the numpy Generator actions are sampled from (PPO shares it with its shuffles).
        reward_scaler: scales rewards for the update (raw returns are still reported).
        gamma, gae_lambda: discount and GAE lambda.
        bootstrap_on_truncation: bootstrap V(final obs) at time-limit ends (else treat as terminal).
        label: the env's name in error messages.
        fast: run the actor in numpy on a snapshot of its weights taken at the start of each
            ``collect`` (:class:`~robustrl.policies.actor_critic.NumpyMLP`; same actions up to
            float rounding, same random stream); False, or a policy without a plain MLP actor,
            steps the reference path through ``policy.sample``.
    """

    def __init__(
        self,
        env: Any,
        policy: Any,
        *,
        steps_per_env: int,
        rng: np.random.Generator,
        reward_scaler: RewardScaler,
        gamma: float,
        gae_lambda: float,
        bootstrap_on_truncation: bool = True,
        label: str = "the environment",
        fast: bool = False,
    ):
        self.env, self.policy, self.rng = env, policy, rng
        self.fast = fast
        self.steps_per_env, self.num_envs = steps_per_env, env.num_envs
        self.reward_scaler = reward_scaler
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.bootstrap_on_truncation = bootstrap_on_truncation
        self.label = label
        self.episodes = EpisodeBook(self.num_envs)
        self.global_step = 0
        self.obs: np.ndarray | None = None
        # an adversary in the loop (robustrl.algos.atla): normalised observations of the envs in
        # ``attacked_envs`` -> what the policy is shown instead (and trained on); None: clean rollouts
        self.observation_attack: Callable[[Any], Any] | None = None
        self.attacked_envs: np.ndarray | None = None

    def reset(self, seed: int) -> None:
        self.obs, _ = self.env.reset(seed=[seed + i for i in range(self.num_envs)])

    @torch.no_grad()
    def collect(self) -> tuple[Batch, list[float]]:
        policy, num_envs = self.policy, self.num_envs
        buffer = TrajectoryBuffer(policy, self.steps_per_env, num_envs)
        finished: list[float] = []
        actor = policy.numpy_actor() if self.fast and hasattr(policy, "numpy_actor") else None
        std = policy.log_std.exp().numpy() if actor is not None and policy.continuous else None
        for t in range(self.steps_per_env):
            policy.normalizer.update(self.obs)
            if actor is not None:
                obs = policy.normalizer(self.obs)  # numpy, the values policy.normalize wraps
                obs = self._attacked(obs)
                actions = policy.sample_from_output(actor(obs), std, self.rng)
            else:
                obs = self._attacked(policy.normalize(self.obs))
                actions = policy.sample(obs, self.rng)
            # blame the policy, not the env, when its own output is already broken
            require_finite(actions, f"action from the policy at step {self.global_step}: its parameters diverged")
            next_obs, reward, term, trunc, info = self.env.step(policy.to_env_action(actions))
            where = f" from {self.label} at step {self.global_step}"
            require_finite(next_obs, "observation" + where)
            require_finite(reward, "reward" + where)
            done = term | trunc
            buffer.add(t, obs, actions, self.reward_scaler(reward, done), term, trunc)
            for i in np.flatnonzero(trunc & ~term):
                if self.bootstrap_on_truncation:
                    final = info["final_obs"][i]
                    require_finite(final, "final observation (truncation)" + where)
                    buffer.add_final_obs(t, i, final)
            finished += self.episodes.step(reward, done)
            self.obs = next_obs
            self.global_step += num_envs
        return buffer.batch(self.obs, self.gamma, self.gae_lambda), finished

    def _attacked(self, obs: Any) -> Any:
        """``obs`` (normalised, numpy or torch) with the attacked envs' rows as the adversary shows them."""
        if self.observation_attack is None or self.attacked_envs is None or not self.attacked_envs.any():
            return obs
        obs = obs.copy() if isinstance(obs, np.ndarray) else obs.clone()
        rows = self.attacked_envs if isinstance(obs, np.ndarray) else torch.as_tensor(self.attacked_envs)
        obs[rows] = self.observation_attack(obs[rows])
        return obs

    def state_dict(self) -> dict[str, Any]:
        return {
            "obs": np.asarray(self.obs, dtype=np.float64).tolist(),
            "global_step": self.global_step,
            **self.episodes.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.episodes.load_state_dict(state)
        self.global_step = int(state["global_step"])
        self.obs = np.asarray(state["obs"], dtype=self.env.single_observation_space.dtype)


class MultiAgentCollector:
    """Several policies acting in ``num_envs`` copies of a PettingZoo parallel env.

    ``policies`` maps each agent to its policy (the same object twice is self-play with shared
    weights; per-agent normalisers then see both seats). ``collect()`` returns one
    :class:`Batch` per agent in ``trained`` (rewards scaled by that agent's own scaler) and the raw
    returns of the episodes that ended, per agent. An episode ends for every agent when any agent
    terminates or truncates (the two-player games here end together); all copies then reset,
    seeded ``seed + episode count``, so a run is reproducible.

    Written here rather than taken from SuperSuit's vector wrappers: those concatenate agents into
    one batch and drop the per-agent final observation that truncation bootstrapping needs.
    """

    def __init__(
        self,
        env_fns: list[Callable[[], Any]],
        policies: Mapping[str, Any],
        *,
        trained: tuple[str, ...] | None = None,
        steps_per_env: int,
        rng: np.random.Generator,
        gamma: float,
        gae_lambda: float,
        clip_rewards: float | None = 10.0,
        scale_rewards: bool = True,
        seed: int = 0,
    ):
        self.envs = [make() for make in env_fns]
        self.agents = list(self.envs[0].possible_agents)
        missing = set(self.agents) - set(policies)
        if missing:
            raise ValueError(f"no policy for agent(s) {sorted(missing)} of the env (agents: {self.agents})")
        self.policies = dict(policies)
        self.trained = tuple(trained or self.agents)
        self.num_envs, self.steps_per_env, self.rng = len(self.envs), steps_per_env, rng
        self.gamma, self.gae_lambda, self.seed = gamma, gae_lambda, seed
        self.reward_scalers = {a: RewardScaler(self.num_envs, gamma, clip_rewards, scale_rewards) for a in self.trained}
        self.episodes = {a: EpisodeBook(self.num_envs) for a in self.agents}
        self.resets = 0
        self.global_step = 0
        self.obs = [self._reset(i) for i in range(self.num_envs)]

    def _reset(self, index: int) -> dict[str, np.ndarray]:
        obs, _ = self.envs[index].reset(seed=self.seed + self.resets)
        self.resets += 1
        return obs

    @torch.no_grad()
    def collect(self) -> tuple[dict[str, Batch], dict[str, list[float]]]:
        buffers = {a: TrajectoryBuffer(self.policies[a], self.steps_per_env, self.num_envs) for a in self.trained}
        finished: dict[str, list[float]] = {a: [] for a in self.agents}
        for t in range(self.steps_per_env):
            raw = {a: np.stack([o[a] for o in self.obs]) for a in self.agents}
            normalised, sampled = {}, {}
            for agent in self.agents:
                policy = self.policies[agent]
                if agent in self.trained:
                    policy.normalizer.update(raw[agent])
                normalised[agent] = policy.normalize(raw[agent])
                sampled[agent] = policy.sample(normalised[agent], self.rng)
                require_finite(sampled[agent], f"action from {agent}'s policy at step {self.global_step}")
            env_actions = {a: self.policies[a].to_env_action(sampled[a]) for a in self.agents}
            rewards = {a: np.zeros(self.num_envs) for a in self.agents}
            term = {a: np.zeros(self.num_envs, dtype=bool) for a in self.agents}
            trunc = {a: np.zeros(self.num_envs, dtype=bool) for a in self.agents}
            final: dict[tuple[str, int], np.ndarray] = {}
            for i, env in enumerate(self.envs):
                obs, reward, terminated, truncated, _ = env.step({a: env_actions[a][i] for a in self.agents})
                for agent in self.agents:
                    rewards[agent][i] = reward[agent]
                    term[agent][i], trunc[agent][i] = terminated[agent], truncated[agent]
                    require_finite(reward[agent], f"reward of {agent} at step {self.global_step}")
                    require_finite(obs[agent], f"observation of {agent} at step {self.global_step}")
                if any(terminated.values()) or any(truncated.values()):
                    for agent in self.agents:
                        final[(agent, i)] = obs[agent]
                        trunc[agent][i] = trunc[agent][i] or not term[agent][i]  # ended by the other agent
                    obs = self._reset(i)
                self.obs[i] = obs
            for agent in self.agents:
                done = term[agent] | trunc[agent]
                if agent in buffers:
                    scaled = self.reward_scalers[agent](rewards[agent], done)
                    buffers[agent].add(t, normalised[agent], sampled[agent], scaled, term[agent], trunc[agent])
                    for i in np.flatnonzero(trunc[agent] & ~term[agent]):
                        buffers[agent].add_final_obs(t, i, final[(agent, i)])
                finished[agent] += self.episodes[agent].step(rewards[agent], done)
            self.global_step += self.num_envs
        last = {a: np.stack([o[a] for o in self.obs]) for a in self.agents}
        return {a: buffers[a].batch(last[a], self.gamma, self.gae_lambda) for a in self.trained}, finished

    def close(self) -> None:
        for env in self.envs:
            env.close()
