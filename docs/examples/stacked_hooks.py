"""Stack two callbacks with state of their own on BAR-PPO, interrupt, resume, and end exactly where
an uninterrupted run ends.

- `TopMagnitudeMask`: keeps the largest-magnitude half of each actor weight matrix, re-chosen every
  `interval` optimiser steps from the clock; its masks are state (saved under
  `callback/mask/...`) and are applied inside PPO's (compiled) update step.
- `ActorL2`: a regulariser, kappa * sum of squared actor weights, added to the policy loss; it
  counts the minibatches it has seen (JSON state).

    python docs/examples/stacked_hooks.py
"""

from __future__ import annotations

import dataclasses
import os
import signal
import tempfile
from pathlib import Path

import torch

from robustrl import TrainConfig, ppo_defaults_for, train
from robustrl.algos import PPOHooks
from robustrl.algos.hooks import Callback, Clock
from robustrl.config import RobustConfig
from robustrl.policies.checkpoint import latest_checkpoint


class TopMagnitudeMask(Callback):
    name = "mask"

    def __init__(self, keep: float = 0.5, interval: int = 8):
        self.keep, self.step_interval = keep, interval
        self.masks: dict[str, torch.Tensor] = {}

    def bind(self, trainer) -> None:
        self.parameters = {n: p for n, p in trainer.policy.named_parameters() if n.startswith("actor.") and p.ndim == 2}
        self.masks = {n: torch.ones_like(p) for n, p in self.parameters.items()}

    def on_step(self, clock: Clock) -> None:
        for name, weight in self.parameters.items():
            k = max(1, int(self.keep * weight.numel()))
            threshold = weight.detach().abs().flatten().kthvalue(weight.numel() - k + 1).values
            self.masks[name].copy_((weight.detach().abs() >= threshold).float())  # in place: the compiled step sees it

    def parameter_masks(self) -> dict[str, torch.Tensor]:
        return self.masks

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {name.replace(".", "_"): mask for name, mask in self.masks.items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name in self.masks:
            self.masks[name].copy_(tensors[name.replace(".", "_")])


class ActorL2(Callback):
    name = "actor_l2"
    kappa = 1e-4

    def __init__(self):
        self.minibatches = 0

    def loss(self, minibatch, policy, clock: Clock):
        self.minibatches += 1
        term = sum((p**2).sum() for n, p in policy.named_parameters() if n.startswith("actor.") and p.ndim == 2)
        return term, {}

    def state_json(self) -> dict:
        return {"minibatches": self.minibatches}

    def load_state_json(self, state: dict) -> None:
        self.minibatches = int(state.get("minibatches", 0))


def hooks() -> PPOHooks:
    return PPOHooks(callbacks=[TopMagnitudeMask(), ActorL2()])


def main(root: Path, iterations: int = 4) -> tuple[dict, dict]:
    config = TrainConfig(
        "Pendulum-v1", algo="bar-ppo", total_steps=512 * iterations, seed=0,
        ppo=dataclasses.replace(ppo_defaults_for("Pendulum-v1"), steps_per_iteration=512, num_minibatches=8, policy_epochs=2, value_epochs=2),
        robust=RobustConfig(eps=0.1),
    )  # fmt: skip
    train(config, root / "full", hooks=hooks())

    def interrupt_after_second(stats):  # a real Ctrl-C, mid-run
        if stats.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)

    interrupted = hooks()
    interrupted.on_iteration.append(interrupt_after_second)
    train(config, root / "part", hooks=interrupted)
    train(
        resume=root / "part", hooks=hooks()
    )  # the same callbacks, built afresh: their state comes from the checkpoint
    full, _, _ = latest_checkpoint(root / "full")
    resumed, _, _ = latest_checkpoint(root / "part")
    return full, resumed


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        full, resumed = main(Path(directory))
    same = full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    zeros = float((full["policy/actor.0.weight"] == 0).float().mean())
    print(f"resumed run equals the uninterrupted one: {same}; actor.0 weights pruned: {zeros:.0%}")
