"""PA-AD: policy adversarial actor-director (Sun et al. 2022, ICLR, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robustrl.attacks.adversary import LearnedAdversaryAttack
from robustrl.attacks.base import register
from robustrl.errors import InvalidArgumentError
from robustrl.threat import Ball, fgsm
from robustrl.threat.objectives import direction_objective, plain_mlp


@register
class PAADAttack(LearnedAdversaryAttack):
    """The *director* (trained with PPO on the adversary MDP) outputs a direction d in the victim's
    action space; the *actor* turns it into an observation perturbation by one FGSM step of size
    eps on  cos(mu(s_hat) - mu(s), d) + w * ||mu(s_hat) - mu(s)||  (direction, plus the action
    change, as in the reference code). The FGSM step starts from a random point of the ball:
    at s_hat = s the action change is zero and the cosine has no gradient."""

    name = "pa-ad"

    @dataclass(frozen=True)
    class Options:
        budget: int = 1_000_000
        grid: tuple[dict[str, Any], ...] | None = None
        selection_episodes: int = 10
        num_envs: int = 8  # as SA-RL's (5.3 min per 1M steps on Hopper instead of 9.1)
        action_change_weight: float = 1.0
        curriculum_scale: float = 4.0  # see SARLAttack.Options
        curriculum_fraction: float = 0.5

    def bind(self, policy: Any, env_id: str) -> None:
        if not policy.continuous:
            raise InvalidArgumentError("pa-ad is implemented for continuous-action victims (MuJoCo); use sa-rl for discrete actions")
        super().bind(policy, env_id)
        # the victim is frozen: one numpy copy of its actor serves every FGSM step (issue 16: the
        # autograd step was ~0.9 ms of each 4-env step while the director trains)
        self._actor_mlp = plain_mlp(policy, "actor")

    def adversary_action_dim(self) -> int:
        return self.policy.action_dim

    def perturbation_from_action(self, obs: torch.Tensor, action: torch.Tensor, ball: Ball | None = None) -> torch.Tensor:
        policy, weight = self.policy, self.options.action_change_weight

        def objective(obs_hat: torch.Tensor) -> torch.Tensor:  # autograd form (other policies; tests)
            with torch.no_grad():
                clean_action = policy.mean_action(obs)
            change = policy.mean_action(obs_hat) - clean_action
            return F.cosine_similarity(change, action, dim=-1, eps=1e-8) + weight * change.norm(dim=-1)

        ball = ball or self.ball
        if getattr(self, "_actor_mlp", None) is not None and policy is self.policy:
            objective = direction_objective(policy, obs, action, weight, objective, self._actor_mlp)
            if ball.norm == "inf" and ball.low is None and ball.high is None and ball.eps > 0:
                return self._fgsm_linf(objective, obs, ball.eps)
        return fgsm(objective, obs, ball, random_start=True, generator=self.generator)

    def _fgsm_linf(self, objective: Any, obs: torch.Tensor, eps: float) -> torch.Tensor:
        """:func:`~robustrl.threat.fgsm` with a random start in an l_inf ball, written in numpy:
        the same draw from the attack's generator, the same step and projection (tested), without
        the dozen small torch ops per call (~100 us each env step while the director trains)."""
        x = obs.detach().numpy()
        uniform = torch.rand(obs.shape, generator=self.generator, dtype=obs.dtype).numpy()
        start = x + eps * (2.0 * uniform - 1.0)
        _, grad = objective.value_and_grad(torch.from_numpy(start))
        return torch.from_numpy(x + np.clip(start + eps * np.sign(grad.numpy()) - x, -eps, eps))
