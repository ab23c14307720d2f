"""The random attack: uniform noise in the ball, the baseline every table starts with."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustrl.attacks.base import Attack, register


@register
class RandomAttack(Attack):
    """Uniform noise in the ball (the "random" attack of SA-PPO, Zhang et al. 2020)."""

    name = "random"

    @dataclass(frozen=True)
    class Options:
        pass

    def _perturb(self, obs: torch.Tensor) -> torch.Tensor:
        return self.ball.sample(obs, self.generator)
