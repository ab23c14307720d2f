"""Robust training objectives, each a small term plugged into the one PPO loop.

Every objective implements the :class:`robustrl.algos.ppo.Objective` protocol and gets the
perturbation radius from the shared linear eps schedule (0 -> target over the first 75% of
iterations). ``robust_hooks(name)`` builds the PPO hooks for ``robustrl train --algo NAME``.
"""

from __future__ import annotations

from collections.abc import Callable

from robustrl.algos.objectives.arpo import ARPPO
from robustrl.algos.objectives.barpo import BARPPO
from robustrl.algos.objectives.barpo_wocar import WorstCaseAwareBARPPO
from robustrl.algos.objectives.common import linear_eps_schedule
from robustrl.algos.objectives.radial import RADIALPPO
from robustrl.algos.objectives.sa_ppo import SAPPO, MinimaxKL
from robustrl.algos.objectives.wocar import WocaRPPO
from robustrl.algos.ppo import PPOHooks
from robustrl.config import TrainConfig

OBJECTIVES: dict[str, type] = {
    "ar-ppo": ARPPO,
    "bar-ppo": BARPPO,
    "bar-ppo-wocar": WorstCaseAwareBARPPO,
    "sa-ppo": SAPPO,
    "minimax-kl": MinimaxKL,
    "wocar-ppo": WocaRPPO,
    "radial-ppo": RADIALPPO,
}


def robust_hooks(name: str) -> Callable[[TrainConfig], PPOHooks]:
    def build(config: TrainConfig) -> PPOHooks:
        target = config.robust.target_eps(config.env_id)
        return PPOHooks(
            objective=OBJECTIVES[name](config),
            eps_schedule=linear_eps_schedule(target, config.robust.eps_warmup_fraction),
        )

    return build


__all__ = [
    "ARPPO",
    "BARPPO",
    "OBJECTIVES",
    "RADIALPPO",
    "SAPPO",
    "MinimaxKL",
    "WocaRPPO",
    "WorstCaseAwareBARPPO",
    "linear_eps_schedule",
    "robust_hooks",
]
