"""Hooks into the PPO loop: objects with a clock, state of their own, and composition.

A :class:`Callback` sees the :class:`Clock` (iteration, env step, optimiser step) at every point
where it may act, keeps its own tensors (saved in checkpoints under ``callback/<name>/`` and
restored exactly on resume), and any number of them run in one training run: e.g. BAR-PPO's
objective + a pruning mask + a regulariser. What a callback can do:

- ``loss(minibatch, policy, clock)``: an extra term added to the policy loss (a regulariser),
  weighted by its ``kappa``;
- ``parameter_masks()``: 0/1 tensors multiplied into named parameters after every optimiser step.
  PPO applies them *inside* its compiled functional step (``ppo.compile``), so masking keeps
  several steps per compiled call;
- ``dense_parameters()``: for masked parameters trained straight-through (STE), a dense shadow
  of each: after every optimiser step (inside the compiled step too) the shadow takes the step on
  every coordinate, pruned ones included, before the mask is multiplied into the parameter, so
  pruned weights keep learning and can come back when the mask changes;
- ``on_step(clock)``: Python code every ``step_interval`` optimiser steps (e.g. recompute masks);
  the compiled update groups steps so a call never crosses a multiple of ``step_interval``;
- ``on_iteration(stats, clock)``: after each iteration (logging, schedules, early stops);
- ``state_tensors()`` / ``load_state_tensors()`` and ``state_json()`` / ``load_state_json()``.

Names of callbacks in one run must differ: they prefix the saved state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Clock:
    """Where training is: counters a hook may schedule on."""

    iteration: int  # iterations finished so far
    num_iterations: int  # the run's total
    global_step: int  # env steps collected so far
    optimizer_step: int  # optimiser (minibatch) steps taken so far

    @property
    def fraction(self) -> float:
        """Fraction of the run's iterations finished, in [0, 1]."""
        return self.iteration / max(1, self.num_iterations)


class Callback:
    """Base class: every method is a no-op, so a callback overrides only what it uses."""

    name: str = "callback"
    # Call on_step every this many optimiser steps (None: never).
    step_interval: int | None = None
    # Weight of the loss term (if ``loss`` returns one).
    kappa: float = 1.0

    def bind(self, trainer: Any) -> None:
        """Called once when the trainer is built (e.g. to size masks to the policy)."""

    def loss(self, minibatch: Any, policy: Any, clock: Clock) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """An extra policy-loss term for this minibatch and its metrics, or None."""
        return None

    def parameter_masks(self) -> dict[str, torch.Tensor]:
        """Parameter name (as in ``policy.named_parameters()``) -> 0/1 mask of the same shape."""
        return {}

    def dense_parameters(self) -> dict[str, torch.Tensor]:
        """Parameter name -> dense shadow (same shape) of a parameter this callback masks, for the
        straight-through estimator. Invariant the callback keeps: parameter == shadow * mask
        before each step (so when it changes a mask it also sets the parameter to shadow * mask).
        After the optimiser step PPO sets ``shadow <- shadow * (1 - mask) + parameter`` (= shadow
        + the step's update on every coordinate), then ``parameter <- parameter * mask``. The
        gradient the step used is dL/dw at the masked weights, i.e. the straight-through gradient
        of the dense weights (Bengio et al. 2013), and Adam's moments are those of the shadow."""
        return {}

    def on_step(self, clock: Clock) -> None:
        """Every ``step_interval`` optimiser steps."""

    def on_iteration(self, stats: Any, clock: Clock) -> None:
        """After each training iteration."""

    def close(self) -> None:
        """When the trainer closes (e.g. envs of the callback's own)."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise ValueError(f"callback {self.name!r} keeps no tensors, but the checkpoint has {sorted(tensors)[:3]}")

    def state_json(self) -> dict[str, Any]:
        return {}

    def load_state_json(self, state: dict[str, Any]) -> None:
        pass


class StepFunction(Callback):
    """A plain ``fn(policy)`` called after every optimiser step (the older ``after_optimizer_step``
    hook); forces one step per compiled call."""

    step_interval = 1

    def __init__(self, fn: Any, policy_getter: Any, name: str = "after_optimizer_step"):
        self.fn, self.policy_getter, self.name = fn, policy_getter, name

    def on_step(self, clock: Clock) -> None:
        self.fn(self.policy_getter())


def check_unique_names(callbacks: list[Callback]) -> None:
    names = [c.name for c in callbacks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"callbacks must have distinct names (they prefix saved state); repeated: {duplicates}")
