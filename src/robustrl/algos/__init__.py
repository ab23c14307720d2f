"""Training algorithms: the one PPO loop and the objectives that plug into it.

``ALGORITHMS`` maps each ``--algo`` name to a function building its :class:`PPOHooks` from the run
config; robust methods (issue 4) register here without touching the loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from robustrl.algos.ppo import (
    PPO,
    Batch,
    IterationStats,
    Objective,
    PPOHooks,
    compute_gae,
)
from robustrl.config import RobustConfig, TrainConfig, check_field_value
from robustrl.errors import InvalidArgumentError

ALGORITHMS: dict[str, Callable[[TrainConfig], PPOHooks]] = {
    "ppo": lambda config: PPOHooks(),
}


def _register_objectives() -> None:
    from robustrl.algos.objectives import OBJECTIVES, robust_hooks

    for name in OBJECTIVES:
        ALGORITHMS[name] = robust_hooks(name)


_register_objectives()


def _objective_class(algo: str) -> type | None:
    from robustrl.algos.objectives import OBJECTIVES

    if algo not in ALGORITHMS:
        raise InvalidArgumentError(f"unknown algorithm {algo!r}; available: {', '.join(ALGORITHMS)}")
    return OBJECTIVES.get(algo)


def robust_knobs(algo: str) -> tuple[str, ...]:
    """The :class:`RobustConfig` fields algorithm ``algo`` reads (its objective's ``knobs``;
    plain PPO reads none)."""
    cls = _objective_class(algo)
    return tuple(getattr(cls, "knobs", ())) if cls is not None else ()


ATLA_KNOBS = ("eps", "norm", "eps_warmup_fraction")  # what robustrl.algos.atla reads of the robust config


def robust_config_for(algo: str, options: dict[str, Any], atla: bool = False) -> RobustConfig:
    """A validated :class:`RobustConfig` from ``options`` (field -> value), refusing the fields
    ``algo`` does not read: a knob the method would ignore is an error, not a silent no-op.
    ``atla``: a learned adversary in the loop reads the radius and its warm-up too (PPO + ATLA)."""
    knobs = tuple(dict.fromkeys(robust_knobs(algo) + (ATLA_KNOBS if atla else ())))
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(RobustConfig)})
    if unknown:
        raise InvalidArgumentError(f"unknown robust option(s) {unknown}; see `robustrl train --list-knobs`")
    unused = [name for name in options if name not in knobs]
    if unused:
        takes = f"it takes {', '.join(knobs)}" if knobs else "it takes no robust options"
        raise InvalidArgumentError(f"{algo} does not use {', '.join(unused)}; {takes}")
    values = {name: check_field_value(RobustConfig, name, value, "robust.") for name, value in options.items()}
    config = RobustConfig(**values)
    config.validate()
    return config


def check_env_support(config: TrainConfig) -> None:
    """Refuse, before anything is built or written, an algorithm whose objective cannot train on
    ``config.env_id`` (e.g. WocaR-PPO, or SA-PPO with IBP, on a discrete-action env). Builds one
    env only for objectives that have such a requirement."""
    cls = _objective_class(config.algo)
    check = getattr(cls, "unsupported", None)
    if check is None or (check(config.robust, True) is None and check(config.robust, False) is None):
        return
    import gymnasium as gym

    from robustrl.envs.make import make_env

    env = make_env(config.env_id, 1, config.seed, config.backend)
    try:
        continuous = isinstance(env.single_action_space, gym.spaces.Box)
        space = env.single_action_space
    finally:
        env.close()
    reason = check(config.robust, continuous)
    if reason is not None:
        raise InvalidArgumentError(f"{config.algo} {reason}; {config.env_id} has action space {space}")


__all__ = [
    "ALGORITHMS",
    "PPO",
    "Batch",
    "IterationStats",
    "Objective",
    "PPOHooks",
    "check_env_support",
    "compute_gae",
    "robust_config_for",
    "robust_knobs",
]
