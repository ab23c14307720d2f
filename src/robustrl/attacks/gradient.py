"""The gradient attacks that need no training: the critic attack and MAD (random noise is in
:mod:`robustrl.attacks.random`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustrl.attacks.base import Attack, register
from robustrl.threat import DEFAULT_STEPS, DEFAULT_TEMPERATURE, pgd, sgld

# The inner objectives with hand-written gradients live in the threat module, shared with the
# robust-training objectives (re-exported here for callers of the attack module)
from robustrl.threat.objectives import action_divergence, divergence_objective, value_objective  # noqa: F401


@register
class CriticAttack(Attack):
    """Critic attack (Pattanaik et al. 2018, as SA-PPO implements it): PGD that minimises the
    victim's value V(s_hat), i.e. makes the agent believe it is in a bad state. Starts at s (the
    value's gradient is informative there), ``steps`` sign steps of eps/steps."""

    name = "critic"

    @dataclass(frozen=True)
    class Options:
        steps: int = DEFAULT_STEPS
        step_size: float | None = None  # default eps / steps
        random_start: bool = False

    def _perturb(self, obs: torch.Tensor) -> torch.Tensor:
        o = self.options
        return pgd(
            value_objective(self.policy),
            obs,
            self.ball,
            steps=o.steps,
            step_size=o.step_size,
            random_start=o.random_start,
            maximize=False,
            generator=self.generator,
        )


@register
class MADAttack(Attack):
    """Maximal Action Difference (Zhang et al. 2020, Sec. 3.5): maximise KL(pi(.|s) || pi(.|s_hat))
    over the ball with SGLD steps (the KL has zero gradient at s_hat = s, hence the noisy start)."""

    name = "mad"

    @dataclass(frozen=True)
    class Options:
        steps: int = DEFAULT_STEPS
        step_size: float | None = None  # default eps / steps
        temperature: float = DEFAULT_TEMPERATURE

    def _perturb(self, obs: torch.Tensor) -> torch.Tensor:
        o = self.options
        return sgld(
            divergence_objective(self.policy, obs),
            obs,
            self.ball,
            steps=o.steps,
            step_size=o.step_size,
            temperature=o.temperature,
            generator=self.generator,
        )
