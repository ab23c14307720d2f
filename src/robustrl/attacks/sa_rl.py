"""SA-RL: the learned optimal adversary (Zhang et al. 2021, ICLR, Sec. 3 and the ATLA code)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robustrl.attacks.adversary import LearnedAdversaryAttack
from robustrl.attacks.base import register
from robustrl.threat import Ball


def sa_rl_perturbation(obs: torch.Tensor, action: torch.Tensor, ball: Ball) -> torch.Tensor:
    """SA-RL's map from the adversary's action in [-1, 1]^d to the observation it shows:
    s + eps * hardtanh(a), projected onto ``ball`` (also ATLA's, robustrl.algos.atla)."""
    return ball.project(obs + ball.eps * action.clamp(-1.0, 1.0), obs)


@register
class SARLAttack(LearnedAdversaryAttack):
    """The adversary's action a in [-1, 1]^d (d = observation size) is the perturbation itself:
    s_hat = s + eps * hardtanh(a) (l_inf; for l_2 the same point projected onto the ball). Its
    reward is minus the victim's reward, so PPO on this MDP finds the strongest adversary
    (Theorem 5 of SA-PPO's paper: the optimal adversary is an MDP policy)."""

    name = "sa-rl"

    @dataclass(frozen=True)
    class Options:
        budget: int = 1_000_000  # env steps per grid entry (the ATLA/SA-RL papers train ~2M-5M)
        # PPO overrides per candidate adversary; None = the env's reference settings only.
        grid: tuple[dict[str, Any], ...] | None = None
        selection_episodes: int = 10
        # splits the 2048-step batch. 8 (was 4): SA-RL's 1M-step fit on Hopper in 4.1 min instead of
        # 5.9, and as strong (benchmarks/results/learned_attack_cost.md, session 8)
        num_envs: int = 8
        # radius curriculum (LearnedAdversaryAttack): train from scale * eps down to eps over this
        # fraction of the budget; scale 1 = the reference (no curriculum)
        curriculum_scale: float = 4.0
        curriculum_fraction: float = 0.5

    def adversary_action_dim(self) -> int:
        return self.policy.obs_dim

    def perturbation_from_action(self, obs: torch.Tensor, action: torch.Tensor, ball: Ball | None = None) -> torch.Tensor:
        return sa_rl_perturbation(obs, action, ball or self.ball)
