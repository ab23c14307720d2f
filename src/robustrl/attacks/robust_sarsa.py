"""Robust Sarsa (RS) attack (Zhang et al. 2020, SA-PPO paper, Sec. 3.5 and its reference code).

1. Learn Q^pi(s, a) of the *fixed* victim from its own rollouts with the Sarsa TD loss, plus a
   robustness term: ``sarsa_reg`` times the width of Q's interval bounds over an l_inf ball of
   radius ``sarsa_eps`` around s (IBP, :mod:`robustrl.policies.ibp`), with that radius ramped
   linearly from 0 to ``sarsa_eps`` over training. The term makes Q smooth in s, so its gradient
   is a reliable attack direction rather than noise.
2. Attack: PGD minimising Q(s, mu(s_hat)) over s_hat in the ball: the victim is led to the action
   its own critic of itself rates worst.

The rollouts sample the victim's stochastic policy (as the reference's trajectory runner does), so
Q is fitted on actions around mu(s), where the attack will query it. ``grid`` fits one Q per
(sarsa_eps, sarsa_reg) pair and keeps the strongest (lowest victim return over
``selection_episodes``), as the paper's evaluation does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robustrl.attacks.adversary import select_strongest
from robustrl.attacks.base import Attack, register
from robustrl.envs.make import make_env, require_finite
from robustrl.errors import CheckpointError, InvalidArgumentError
from robustrl.policies.actor_critic import mlp
from robustrl.policies.ibp import interval_bounds
from robustrl.progress import Progress
from robustrl.threat import DEFAULT_STEPS, pgd


class QNetwork(torch.nn.Module):
    """Q(s, a) as a 64-64 tanh MLP on [normalised obs, action] (the value network's shape)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.obs_dim, self.action_dim, self.hidden_sizes = obs_dim, action_dim, tuple(hidden_sizes)
        self.net = mlp(obs_dim + action_dim, 1, self.hidden_sizes, "tanh", out_gain=1.0)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action], -1)).squeeze(-1)

    def bounds(self, obs: torch.Tensor, action: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """IBP bounds of Q(s_hat, a) over ||s_hat - s||_inf <= eps (the action is fixed)."""
        low = torch.cat([obs - eps, action], -1)
        high = torch.cat([obs + eps, action], -1)
        lower, upper = interval_bounds(self.net, low, high)
        return lower.squeeze(-1), upper.squeeze(-1)


@register
class RobustSarsaAttack(Attack):
    name = "rs"
    learned = True

    @dataclass(frozen=True)
    class Options:
        iterations: int = 30  # SA-PPO reference: 30 x 2048 steps of rollouts
        steps_per_iteration: int = 2048
        sarsa_eps: float = 0.02
        sarsa_reg: float = 0.1
        grid: tuple[tuple[float, float], ...] | None = None  # (sarsa_eps, sarsa_reg) pairs; None = the pair above
        epochs: int = 10  # Q-regression epochs per iteration (the reference's value epochs)
        num_minibatches: int = 32
        lr: float = 3e-4
        gamma: float = 0.99
        num_envs: int = 4
        attack_steps: int = DEFAULT_STEPS
        selection_episodes: int = 10

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.q: QNetwork | None = None
        self.selection: dict[str, Any] = {}

    def bind(self, policy: Any, env_id: str) -> None:
        if not policy.continuous:
            raise InvalidArgumentError("rs (robust Sarsa) is implemented for continuous-action victims")
        super().bind(policy, env_id)

    # ---- step 1: fit Q^pi ------------------------------------------------------------------------
    def collect(self, total_steps: int, seed: int) -> dict[str, torch.Tensor]:
        """(s, a, r, s', a', not_terminal) of the stochastic victim; a' is the action taken at s'
        (at a truncation, the action the victim would take at the final observation)."""
        policy, num_envs = self.policy, self.options.num_envs
        steps = max(1, total_steps // num_envs)
        env = make_env(self.env_id, num_envs, seed)
        rng = np.random.default_rng(seed)
        obs_list, act_list, rew_list, next_obs_list, next_act_list, cont_list = [], [], [], [], [], []
        try:
            raw, _ = env.reset(seed=[seed + i for i in range(num_envs)])
            obs = policy.normalize(raw)
            actions = policy.sample(obs, rng)
            for _ in range(steps):
                raw, reward, terminated, truncated, info = env.step(policy.to_env_action(actions))
                require_finite(raw, self.env_id)
                next_obs = policy.normalize(raw)
                next_actions = policy.sample(next_obs, rng)
                target_obs, target_actions = next_obs.clone(), next_actions.copy()
                for i in np.flatnonzero(truncated & ~terminated):
                    final = policy.normalize(np.asarray(info["final_obs"][i])[None])
                    target_obs[i] = final[0]
                    target_actions[i] = policy.sample(final, rng)[0]
                obs_list.append(obs)
                act_list.append(torch.as_tensor(actions, dtype=torch.float32))
                rew_list.append(torch.as_tensor(reward, dtype=torch.float32))
                next_obs_list.append(target_obs)
                next_act_list.append(torch.as_tensor(target_actions, dtype=torch.float32))
                cont_list.append(torch.as_tensor(~terminated, dtype=torch.float32))
                obs, actions = next_obs, next_actions
        finally:
            env.close()

        def cat(items):
            return torch.cat(items, 0)

        return {
            "obs": cat(obs_list),
            "actions": cat(act_list),
            "rewards": cat(rew_list),
            "next_obs": cat(next_obs_list),
            "next_actions": cat(next_act_list),
            "not_terminal": cat(cont_list),
        }

    def fit_q(
        self, sarsa_eps: float, sarsa_reg: float, iterations: int, on_iteration: Callable[[int], None] | None = None
    ) -> QNetwork:
        """Fit Q^pi for ``iterations`` rounds of fresh rollouts; ``on_iteration(i)`` after round i
        (1-based)."""
        o = self.options
        torch.manual_seed(self.seed)
        q = QNetwork(self.policy.obs_dim, self.policy.action_dim)
        optimizer = torch.optim.Adam(q.parameters(), lr=o.lr)
        rng = np.random.default_rng(self.seed)
        for iteration in range(iterations):
            data = self.collect(o.steps_per_iteration, self.seed + 1000 * iteration)
            ramp = sarsa_eps * (iteration + 1) / iterations  # radius 0 -> sarsa_eps over training
            size = data["obs"].shape[0]
            minibatch = max(1, size // o.num_minibatches)
            for _ in range(o.epochs):
                order = torch.as_tensor(rng.permutation(size))
                for start in range(0, minibatch * o.num_minibatches, minibatch):
                    index = order[start : start + minibatch]
                    obs, actions = data["obs"][index], data["actions"][index]
                    with torch.no_grad():  # Sarsa target r + gamma Q(s', a') with a' ~ pi(s')
                        target = data["rewards"][index] + o.gamma * data["not_terminal"][index] * q(
                            data["next_obs"][index], data["next_actions"][index]
                        )
                    td_loss = ((q(obs, actions) - target) ** 2).mean()
                    loss = td_loss
                    if sarsa_reg > 0 and ramp > 0:
                        lower, upper = q.bounds(obs, actions, ramp)
                        loss = loss + sarsa_reg * (upper - lower).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            if on_iteration is not None:
                on_iteration(iteration + 1)
        q.eval()
        return q

    def _fit(self, budget: int | None, progress: Progress | None) -> None:
        o = self.options
        # a budget in env steps replaces the number of iterations
        iterations = o.iterations if budget is None else max(1, int(budget) // o.steps_per_iteration)
        grid = list(o.grid) if o.grid else [(o.sarsa_eps, o.sarsa_reg)]
        # progress in env steps over the whole grid (each iteration collects steps_per_iteration)
        total = len(grid) * iterations * o.steps_per_iteration
        candidates = []
        for index, (sarsa_eps, sarsa_reg) in enumerate(grid):

            def on_iteration(
                iteration: int, index: int = index, sarsa_eps: float = sarsa_eps, sarsa_reg: float = sarsa_reg
            ) -> None:
                if progress is not None:
                    done = (index * iterations + iteration) * o.steps_per_iteration
                    progress(
                        f"fit {self.name}",
                        done,
                        total,
                        candidate=index + 1,
                        candidates=len(grid),
                        sarsa_eps=sarsa_eps,
                        sarsa_reg=sarsa_reg,
                    )

            candidates.append(((sarsa_eps, sarsa_reg), self.fit_q(sarsa_eps, sarsa_reg, iterations, on_iteration)))
        best, means = select_strongest(
            candidates, self.policy, self.env_id, self._perturb_with, o.selection_episodes, seed=20_000 + self.seed
        )
        self.q = candidates[best][1]
        self.selection = {
            "chosen": list(candidates[best][0]),
            "grid": [list(p) for p in grid],
            "selection_returns": means,
        }

    # ---- step 2: attack with Q -------------------------------------------------------------------
    def _perturb_with(self, q: QNetwork):
        def perturb(obs: torch.Tensor) -> torch.Tensor:
            return pgd(
                lambda obs_hat: q(obs, self.policy.mean_action(obs_hat)),
                obs,
                self.ball,
                steps=self.options.attack_steps,
                random_start=False,
                maximize=False,
                generator=self.generator,
            )

        return perturb

    def _perturb(self, obs: torch.Tensor) -> torch.Tensor:
        return self._perturb_with(self.q)(obs)

    # ---- persistence -------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f"q/{k}": v for k, v in self.q.state_dict().items()} if self.q is not None else {}

    def _extra_meta(self) -> dict[str, Any]:
        return {"q_hidden_sizes": list(self.q.hidden_sizes) if self.q else None, "selection": self.selection}

    def _load_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        q = QNetwork(self.policy.obs_dim, self.policy.action_dim, tuple(meta.get("q_hidden_sizes") or (64, 64)))
        state = {k[2:]: v for k, v in tensors.items() if k.startswith("q/")}
        try:
            q.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(f"rs attack: Q-network weights do not fit the victim's shapes: {error}") from None
        self.q = q.eval()
        self.selection = meta.get("selection", {})
