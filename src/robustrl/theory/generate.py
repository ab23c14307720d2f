"""Seeded random ISA-MDPs, for tests and experiments."""

from __future__ import annotations

import numbers

import numpy as np

from robustrl.errors import InvalidArgumentError
from robustrl.theory.mdp import TabularISAMDP

__all__ = ["random_isa_mdp"]


def random_isa_mdp(
    num_states: int,
    num_actions: int,
    *,
    seed: int | np.random.Generator = 0,
    gamma: float = 0.9,
    perturbation_size: int = 2,
    include_self: bool = True,
    sparsity: float = 0.0,
) -> TabularISAMDP:
    """A random ISA-MDP: rewards uniform on [-1, 1], transition rows and mu0 from a flat
    Dirichlet, B(s) = s (when ``include_self``) plus distinct random other states, up to
    ``perturbation_size`` states in all.

    Args:
        num_states, num_actions: sizes (>= 1).
        seed: an int seed or a numpy Generator (the one source of randomness).
        gamma: discount factor in [0, 1).
        perturbation_size: |B(s)| (capped at num_states).
        include_self: whether B(s) lists s itself (first).
        sparsity: fraction of transition entries zeroed before renormalising (each row keeps one).
    """
    for name, value in (
        ("num_states", num_states),
        ("num_actions", num_actions),
        ("perturbation_size", perturbation_size),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
    if not 0.0 <= sparsity < 1.0:
        raise InvalidArgumentError(f"sparsity must be in [0, 1), got {sparsity!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rewards = rng.uniform(-1.0, 1.0, (num_states, num_actions))
    transitions = rng.dirichlet(np.ones(num_states), (num_states, num_actions))
    if sparsity > 0:
        keep = rng.random(transitions.shape) >= sparsity
        keep[np.arange(num_states)[:, None], np.arange(num_actions)[None], transitions.argmax(-1)] = True
        transitions = transitions * keep
        transitions /= transitions.sum(-1, keepdims=True)
    size = min(int(perturbation_size), num_states)
    perturbation_sets = []
    for s in range(num_states):
        others = [int(t) for t in rng.permutation(num_states) if t != s]
        perturbation_sets.append([s, *others[: size - 1]] if include_self else others[:size] or [s])
    initial = rng.dirichlet(np.ones(num_states))
    return TabularISAMDP(
        rewards=rewards,
        transitions=transitions,
        gamma=gamma,
        perturbation_sets=perturbation_sets,
        initial_distribution=initial,
    )
