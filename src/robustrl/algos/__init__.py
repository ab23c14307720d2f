"""Training algorithms: the one PPO loop and the objectives that plug into it.

``ALGORITHMS`` maps each ``--algo`` name to a function building its :class:`PPOHooks` from the run
config; robust methods (issue 4) register here without touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable

from robustrl.algos.ppo import (
    PPO,
    Batch,
    IterationStats,
    Objective,
    PPOHooks,
    compute_gae,
)
from robustrl.config import TrainConfig

ALGORITHMS: dict[str, Callable[[TrainConfig], PPOHooks]] = {
    "ppo": lambda config: PPOHooks(),
}


def _register_objectives() -> None:
    from robustrl.algos.objectives import OBJECTIVES, robust_hooks

    for name in OBJECTIVES:
        ALGORITHMS[name] = robust_hooks(name)


_register_objectives()

__all__ = ["ALGORITHMS", "PPO", "Batch", "IterationStats", "Objective", "PPOHooks", "compute_gae"]
